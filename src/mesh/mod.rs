//! The radio mesh: propagation, PHY, MAC, routing twins and the mesh agents.

/// What a scenario says about the mesh (filled in by the mesh model).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {}

/// Messages of the mesh agents.
#[derive(Clone, Debug)]
pub enum MeshMsg {}
