//! PSRP messages ([MS-PSRP] 2.2.1).
