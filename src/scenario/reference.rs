//! The scenario reference: every section and field of a scenario and a sweep plan with its type, default and
//! meaning (units included), as Markdown. `build.rs` generates it from the schema's source (the serde types
//! and their doc comments), so it cannot drift; `gridtwin schema` prints it and docs/scenario.md is the
//! checked-in copy, which a test keeps current.

/// The reference as Markdown (the text of docs/scenario.md).
pub const MARKDOWN: &str = include_str!(concat!(env!("OUT_DIR"), "/scenario.md"));

#[cfg(test)]
mod tests {
    #[test]
    fn names_every_scenario_section_and_the_placement_rules() {
        for s in [
            "## `Scenario`",
            "`grid`",
            "`lmus`",
            "`gateway`",
            "`mesh`",
            "`EveryLine`",
            "`MainJunctions(...)`",
            "## `Plan`",
        ] {
            assert!(super::MARKDOWN.contains(s), "reference lacks {s}");
        }
    }
}
