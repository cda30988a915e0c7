//! The mesh part of a world: the radio mesh from the scenario's `mesh` section, over the nodes the world
//! supplies (LMU poles and the coordinator) or, for a standalone mesh study, over `mesh.layout`. Reports
//! `summary.json` object `mesh` and the tables `mesh_nodes`, `mesh_pdr` and `mesh_flows`.

use super::Part;
use crate::agents::Msg;
use crate::engine::Simulation;
use crate::mesh::{MeshConfig, MeshHandle, NodeSpec, RadioModel};
use crate::report::{Report, Table, num};
use crate::scenario::{InputError, Loaded};
use serde::Serialize;
use serde_json::Value;

/// The mesh as built.
pub struct MeshPart {
    pub handle: MeshHandle,
}

/// Adds the mesh agent over `nodes` (empty: the layout's nodes).
pub fn add(
    sim: &mut Simulation<Msg>,
    loaded: &Loaded,
    cfg: &MeshConfig,
    nodes: &[NodeSpec],
    peers: &[(u32, u32)],
) -> Result<MeshPart, InputError> {
    let name = format!("radio-{}", cfg.radio);
    let (radio, resolved) = loaded.model::<RadioModel>(&name)?;
    radio.validate().map_err(|e| InputError::file(&resolved.file, e, None))?;
    let handle = crate::mesh::build(sim, cfg, &radio, nodes, peers).map_err(|e| loaded.error_in("mesh", e))?;
    for w in &handle.warnings {
        // The builder's warnings mostly name their field (`mesh.radio ...`) or section (`mesh: ...`) already.
        let section = if w.starts_with("mesh") { "" } else { "mesh: " };
        tracing::warn!("{}: {section}{w}", loaded.file);
    }
    Ok(MeshPart { handle })
}

/// A table from serialisable rows: the field names as header, numbers in shortest round-trip form.
fn table<T: Serialize>(rows: &[T]) -> Option<Table> {
    let mut t: Option<Table> = None;
    for row in rows {
        let Ok(Value::Object(map)) = serde_json::to_value(row) else { continue };
        let t = t.get_or_insert_with(|| Table { header: map.keys().cloned().collect(), rows: Vec::new() });
        t.rows.push(
            map.values()
                .map(|v| match v {
                    Value::Null => String::new(),
                    Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), num),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    t
}

impl Part for MeshPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        if self.handle.mesh(sim).is_none() {
            return;
        }
        let m = self.handle.report(sim);
        if let Ok(v) = serde_json::to_value(&m) {
            r.summary.insert("mesh".into(), v);
        }
        let na = |x: Option<f64>, digits: usize| x.map_or("n/a".to_string(), |v| format!("{v:.digits$}"));
        r.human.push(format!(
            "mesh: {} nodes, PDR {}, latency p50 {} ms p99 {} ms, repair {}",
            m.nodes,
            na(m.pdr, 4),
            na(m.latency_ms_p50, 0),
            na(m.latency_ms_p99, 0),
            m.repair_s.map_or("n/a".into(), |s| format!("{s:.0} s"))
        ));
        for (name, t) in
            [("mesh_nodes", table(&m.node_rows)), ("mesh_pdr", table(&m.bins)), ("mesh_flows", table(&m.flows))]
        {
            if let Some(t) = t {
                r.tables.push((name.into(), t));
            }
        }
    }
}
