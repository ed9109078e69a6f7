//! smtp adapter (in progress).
