//! Digital twins of LMU hardware: sensor front-end, contactor.

/// Messages of the LMU twins and agents (filled in with the LMU model).
#[derive(Clone, Debug)]
pub enum LmuMsg {}
