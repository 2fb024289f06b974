//! PSRP fragments ([MS-PSRP] 2.2.4).
