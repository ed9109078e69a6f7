//! reqwest adapter (in progress).
