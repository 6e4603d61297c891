#pragma once
// Runs Catch2's session: what a test program's main does. Compiled once, with Catch2's
// implementation, in catch_impl.cpp (Catch2 v2 is header-only, and its Session is declared only
// where its implementation is compiled).
// output_file: where the reporter writes, or nullptr for the console.
int traincb_catch_run(int argc, char* argv[], const char* output_file);
