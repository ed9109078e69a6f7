//! postgres adapter (in progress).
