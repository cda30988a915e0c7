//! The command-line interface: `run`, `check`, `sweep`, `bench`, `grid`.
pub mod grid;
