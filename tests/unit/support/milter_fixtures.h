/*
 * milter_fixtures.h: the milter connections recorded from real MTAs
 * (unit/milter/data, whose README.md says how each was recorded).
 *
 *   milter_fixture_names()        every NAME that has a NAME.mta.bin, sorted
 *   read_milter_fixture(NAME, SIDE)   the bytes of NAME.SIDE.bin, SIDE
 *                                 "mta" (what the MTA sent) or "filter"
 *                                 (what the filter answered)
 *   milter_fixture_file(NAME)     a file beside them (policies, lists)
 *
 * Needs PORTCULLIS_SOURCE_DIR, as every unit test has it.
 */
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace portcullis::test_support {

inline std::filesystem::path milter_fixture_file(const std::string& name) {
    return std::filesystem::path(PORTCULLIS_SOURCE_DIR) / "tests/unit/milter/data" / name;
}

inline std::vector<std::string> milter_fixture_names() {
    constexpr std::string_view kSuffix = ".mta.bin";
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(milter_fixture_file(""))) {
        const std::string file = entry.path().filename().string();
        if (file.size() > kSuffix.size() && file.ends_with(kSuffix)) {
            names.push_back(file.substr(0, file.size() - kSuffix.size()));
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

inline std::string read_milter_fixture(const std::string& name, const std::string& side) {
    const auto path = milter_fixture_file(name + "." + side + ".bin");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace portcullis::test_support
