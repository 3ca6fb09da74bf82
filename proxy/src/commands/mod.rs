//! Operator commands beyond running the proxy: `moat passwd`, `moat policy import|explain`, `moat ctl`.
//! They live in the library so they are testable; `main.rs` only parses arguments.

pub mod ctl;
pub mod explain;
pub mod passwd;
