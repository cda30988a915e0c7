//! The one integration-test binary of gridtwin: one module per concern.
#![allow(clippy::result_large_err)]
mod chain;
mod cli;
mod cloud;
mod determinism;
mod foundation;
mod gateway;
mod grid;
mod lmu;
mod market;
mod mesh;
mod plan;
mod plots;
mod privacy;
mod security;
mod sweeps;

/// Mesh nodes a scenario's own layout places (0 when its mesh takes the LMU poles or it has no mesh): what
/// decides how long the determinism and foundation tests may run it.
pub fn layout_mesh_nodes(l: &gridtwin::scenario::Loaded) -> usize {
    l.scenario
        .mesh
        .as_ref()
        .and_then(|m| m.layout.as_ref())
        .map_or(0, |lay| gridtwin::mesh::build::layout_nodes(lay, l.scenario.seed).len())
}
