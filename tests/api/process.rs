//! The `scrip` binary: `scrip dev`, and a server killed mid-batch.
