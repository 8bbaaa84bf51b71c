/*
 * temp_dir.h: a fresh directory under $TMPDIR for one test, removed with
 * everything in it when the TempDir goes.
 *
 * path(NAME) is NAME inside it; write(NAME, TEXT) creates NAME (and its
 * parent directories) with TEXT and returns its path; names() lists what
 * the directory holds, to spot a file left behind.
 */
#pragma once

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace portcullis::test_support {

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "portcullis-test-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string path(const std::string& name) const { return (path_ / name).string(); }

    std::string write(const std::string& name, const std::string& text) const {
        const std::filesystem::path file = path_ / name;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file, std::ios::binary) << text;
        return file.string();
    }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& item : std::filesystem::directory_iterator(path_)) {
            out.push_back(item.path().filename().string());
        }
        return out;
    }

private:
    std::filesystem::path path_;
};

}  // namespace portcullis::test_support
