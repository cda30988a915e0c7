//! LMU firmware: power quality, protection, fault location/isolation/restoration.
