//! Unit and property tests: one named test per semantic rule and per trap.

mod eval;
mod helpers;
mod import;
mod load;
mod placeholders;
mod props;
mod topics;
