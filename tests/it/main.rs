//! The one integration-test binary of gridtwin: one module per concern.
#![allow(clippy::result_large_err)]
mod cloud;
mod foundation;
mod gateway;
mod grid;
mod lmu;
mod mesh;
