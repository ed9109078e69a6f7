//! sqlite adapter (in progress).
