//! Operator commands beyond running the proxy: `moat passwd`, `moat policy import|explain`.
//! They live in the library so they are testable; `main.rs` only parses arguments.

pub mod explain;
pub mod passwd;
