#pragma once
// Errors a user can act on. Every message names the offending value and where it came from
// (file, line, field) and ends with a hint. Broken internal invariants use TORCH_INTERNAL_ASSERT.

#include <stdexcept>
#include <string>

namespace trainscope {

// Base of every error caused by user input: config, data, checkpoints, shapes.
// The CLI prints what() on one line and exits with status 2.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A configuration value is unknown, malformed or out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A data file is missing, truncated or malformed, or a label is out of range.
class DataError : public Error {
 public:
  using Error::Error;
};

// A checkpoint or weights file cannot be written or read back.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// A data-parallel job lost a rank, or its collectives timed out. Not the user's input: the CLI
// exits 1.
class JobError : public Error {
 public:
  using Error::Error;
};

// A checkpoint file whose contents are damaged: truncated, failing a checksum, or not a
// checkpoint at all. (A file that cannot be opened or comes from a newer trainscope is a plain
// CheckpointError.)
class CheckpointDamaged : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

// A model's output does not fit the task (classes, targets).
class ShapeError : public Error {
 public:
  using Error::Error;
};

}  // namespace trainscope
