/*
 * verify_driver.cc: runs dkim::Verifier over messages in files, with the
 * DNS given on stdin, for signed_suite.py (which signs the messages).
 *
 * Input, one command a line:
 *   dns                              start a new, empty DNS
 *   txt NAME RECORD                  a TXT record of NAME: the rest of
 *                                    the line
 *   timeout NAME                     NAME's lookups time out
 *   verify ID FILE CHUNK MIN_BITS    verify the message in FILE, its body
 *                                    in pieces of CHUNK bytes (0: whole),
 *                                    RSA keys of MIN_BITS at least, the
 *                                    keys it names answered from the DNS
 * Output, for each verify:
 *   ID summary SUMMARY PASSING_DOMAIN
 *   ID signature RESULT KEY_BITS DOMAIN SELECTOR ALGORITHM REASON
 * one signature line each, in header order; an empty word is "-", and
 * REASON is the rest of the line.
 */
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "checks/dkim.h"
#include "support/fake_txt_lookups.h"
#include "support/mail_message.h"

namespace {

using portcullis::dkim::Verdict;

std::string word(const std::string& text) { return text.empty() ? "-" : text; }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void print(const std::string& id, const Verdict& verdict) {
    std::cout << id << " summary " << verdict.summary() << ' ' << word(verdict.passing_domain()) << '\n';
    for (const auto& signature : verdict.signatures) {
        std::cout << id << " signature " << portcullis::dkim::result_name(signature.result) << ' '
                  << signature.key_bits << ' ' << word(signature.domain) << ' ' << word(signature.selector) << ' '
                  << word(signature.algorithm) << ' ' << word(signature.reason) << '\n';
    }
}

}  // namespace

int main() {
    auto dns = std::make_unique<portcullis::test_support::FakeTxtLookups>();
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream words(line);
        std::string command;
        words >> command;
        if (command == "dns") {
            dns = std::make_unique<portcullis::test_support::FakeTxtLookups>();
        } else if (command == "txt") {
            std::string name, record;
            words >> name >> std::ws;
            std::getline(words, record);
            dns->add(name, {record});
        } else if (command == "timeout") {
            std::string name;
            words >> name;
            dns->time_out(name);
        } else if (command == "verify") {
            std::string id, file;
            size_t chunk = 0;
            unsigned min_bits = 0;
            if (!(words >> id >> file >> chunk >> min_bits)) throw std::runtime_error("bad verify line: " + line);
            portcullis::dkim::Verifier verifier({min_bits, 16});
            print(id, portcullis::test_support::verify(verifier, portcullis::test_support::split_message(read_file(file)),
                                                       *dns, chunk));
        } else if (!command.empty()) {
            throw std::runtime_error("unknown command: " + line);
        }
    }
    return 0;
}
