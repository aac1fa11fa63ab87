#pragma once
// The readers take paths: each input is written to one file in memory-backed /dev/shm.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

inline std::filesystem::path fuzz_file(const uint8_t* data, size_t size, const char* name) {
  static const std::filesystem::path path =
      std::filesystem::path(std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp") /
      ("trainscope-fuzz-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}
