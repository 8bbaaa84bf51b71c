/*
 * toml_impl.cc: toml++'s parser compiled into the libFuzzer config target.
 *
 * Debian ships toml++ as a shared library, which libFuzzer cannot see
 * into: without this file the fuzzer gets no coverage feedback from the
 * TOML grammar.  With the same TOML_HEADER_ONLY=0 / TOML_SHARED_LIB=1 as
 * config.cc, TOML_IMPLEMENTATION emits the library's functions here,
 * instrumented, and the executable's copies take precedence over the
 * shared library's.  Only the PORTCULLIS_FUZZ build uses it.
 *
 * Compiled with -fno-sanitize=unreachable: toml++ 3.3.0 reaches the
 * TOML_UNREACHABLE of is_non_ascii_horizontal_whitespace() on many
 * non-ASCII characters outside strings (a file that is just "\xc3\xb6"),
 * a known upstream bug (marzer/tomlplusplus#190, #295, fixed by #305),
 * which would otherwise stop every run within seconds.  See README.md.
 */
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
