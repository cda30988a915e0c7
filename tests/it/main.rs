//! The one integration-test binary of gridtwin: one module per concern.
mod grid;
mod lmu;
mod mesh;
