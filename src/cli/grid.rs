//! `gridtwin grid ...`: power flow and short circuits from the command line.
