//! Grid physics: three-phase LV networks, power flow, short circuits, loads and generation.

/// What a scenario says about the grid (filled in by the grid model).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {}

/// Messages of the grid agent.
#[derive(Clone, Debug)]
pub enum GridMsg {}
