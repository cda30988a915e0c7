//! Digital twins of LMU hardware: sensor front-end, contactor.
