//! HAL trait for the LMU's metering (filled in with the LMU firmware).
