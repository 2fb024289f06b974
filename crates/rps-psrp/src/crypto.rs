//! The session key exchange and SecureString encryption ([MS-PSRP] 2.2.2.3, 2.2.2.4,
//! 2.2.5.1.24, 3.1.1.2.7).
//!
//! The client sends its RSA public key as a CryptoAPI `PUBLICKEYBLOB`; the server answers
//! with a random 256-bit AES key, encrypted with RSAES-PKCS1-v1_5, as a `SIMPLEBLOB`. Every
//! `<SS>` afterwards is the UTF-16LE text, AES-256-CBC encrypted with that key (zero IV,
//! PKCS#7 padding), in base64.
//!
//! ```text
//! PUBLICKEYBLOB:  06 02 00 00 | 00 a4 00 00 (CALG_RSA_KEYX) | "RSA1" | bitlen u32 LE |
//!                 pubexp u32 LE | modulus (bitlen/8 bytes, little-endian)
//! SIMPLEBLOB:     01 02 00 00 | 10 66 00 00 (CALG_AES_256) | 00 a4 00 00 (CALG_RSA_KEYX) |
//!                 RSA ciphertext (little-endian, i.e. byte-reversed)
//! ```
//!
//! Sans-IO: key pairs and randomness come from the caller.

use aes::Aes256;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rsa::rand_core::CryptoRngCore;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};

/// Size of the CryptoAPI blob header (`BLOBHEADER`).
pub const BLOB_HEADER_LEN: usize = 8;
/// Size of `RSAPUBKEY` (magic, bitlen, pubexp).
pub const RSAPUBKEY_LEN: usize = 12;
/// `PUBLICKEYBLOB` type byte.
pub const PUBLICKEYBLOB: u8 = 0x06;
/// `SIMPLEBLOB` type byte.
pub const SIMPLEBLOB: u8 = 0x01;
/// Blob version.
pub const CUR_BLOB_VERSION: u8 = 0x02;
/// `CALG_RSA_KEYX`.
pub const CALG_RSA_KEYX: u32 = 0x0000_a400;
/// `CALG_AES_256`.
pub const CALG_AES_256: u32 = 0x0000_6610;
/// `RSA1`, the public key magic.
pub const RSA1_MAGIC: u32 = 0x3141_5352;

/// Why a key blob or a SecureString could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The blob is shorter than its header says.
    #[error("truncated {what}: {available} bytes, need {needed}")]
    Truncated {
        /// Which blob.
        what: &'static str,
        /// Bytes available.
        available: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// A header field has the wrong value.
    #[error("invalid {what} field {field}: {value:#x}")]
    InvalidField {
        /// Which blob.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// The RSA operation failed (bad key, bad padding).
    #[error("rsa {0} failed")]
    Rsa(&'static str),
    /// The decrypted session key is not 32 bytes.
    #[error("session key of {0} bytes, expected 32")]
    KeyLength(usize),
    /// Base64 did not decode.
    #[error("invalid base64 in {0}")]
    Base64(&'static str),
    /// AES decryption failed (bad padding: wrong key or corrupt data).
    #[error("securestring decryption failed")]
    Decrypt,
    /// The decrypted text is not UTF-16LE.
    #[error("securestring is not valid utf-16")]
    Utf16,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// Writes `key` as a `PUBLICKEYBLOB`.
pub fn public_key_blob(key: &RsaPublicKey) -> Result<Vec<u8>, CryptoError> {
    let modulus = key.n().to_bytes_le();
    let len = key.size();
    let bitlen = u32::try_from(len * 8).map_err(|_| CryptoError::Rsa("key size"))?;
    let exp = key.e().to_bytes_le();
    if exp.len() > 4 {
        return Err(CryptoError::Rsa("public exponent"));
    }
    let mut e = [0u8; 4];
    e[..exp.len()].copy_from_slice(&exp);
    let mut out = Vec::with_capacity(BLOB_HEADER_LEN + RSAPUBKEY_LEN + len);
    out.extend_from_slice(&[PUBLICKEYBLOB, CUR_BLOB_VERSION, 0, 0]);
    out.extend_from_slice(&CALG_RSA_KEYX.to_le_bytes());
    out.extend_from_slice(&RSA1_MAGIC.to_le_bytes());
    out.extend_from_slice(&bitlen.to_le_bytes());
    out.extend_from_slice(&e);
    out.extend_from_slice(&modulus);
    out.resize(BLOB_HEADER_LEN + RSAPUBKEY_LEN + len, 0);
    Ok(out)
}

/// Reads a `PUBLICKEYBLOB`.
pub fn parse_public_key_blob(blob: &[u8]) -> Result<RsaPublicKey, CryptoError> {
    const WHAT: &str = "public key blob";
    let head = BLOB_HEADER_LEN + RSAPUBKEY_LEN;
    if blob.len() < head {
        return Err(CryptoError::Truncated {
            what: WHAT,
            available: blob.len(),
            needed: head,
        });
    }
    let check = |field, value: u32, want: u32| {
        if value == want {
            Ok(())
        } else {
            Err(CryptoError::InvalidField {
                what: WHAT,
                field,
                value,
            })
        }
    };
    check("bType", u32::from(blob[0]), u32::from(PUBLICKEYBLOB))?;
    check("aiKeyAlg", u32_at(blob, 4), CALG_RSA_KEYX)?;
    check("magic", u32_at(blob, 8), RSA1_MAGIC)?;
    let bitlen = u32_at(blob, 12);
    let len = usize::try_from(bitlen / 8).map_err(|_| CryptoError::Rsa("key size"))?;
    let needed = head.saturating_add(len);
    let Some(modulus) = blob.get(head..needed) else {
        return Err(CryptoError::Truncated {
            what: WHAT,
            available: blob.len(),
            needed,
        });
    };
    let e = BigUint::from(u32_at(blob, 16));
    RsaPublicKey::new(BigUint::from_bytes_le(modulus), e).map_err(|_| CryptoError::Rsa("key"))
}

/// A negotiated AES-256 session key.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// Wraps 32 key bytes (the server draws them from its random source).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SessionKey(bytes)
    }

    /// Encrypts the key for the client's public key as a `SIMPLEBLOB`.
    pub fn encrypt_for<R: CryptoRngCore>(
        &self,
        rng: &mut R,
        client_key: &RsaPublicKey,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut ct = client_key
            .encrypt(rng, Pkcs1v15Encrypt, &self.0)
            .map_err(|_| CryptoError::Rsa("encryption"))?;
        ct.reverse();
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&[SIMPLEBLOB, CUR_BLOB_VERSION, 0, 0]);
        out.extend_from_slice(&CALG_AES_256.to_le_bytes());
        out.extend_from_slice(&CALG_RSA_KEYX.to_le_bytes());
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a `SIMPLEBLOB` with the client's private key.
    pub fn decrypt_from(blob: &[u8], key: &RsaPrivateKey) -> Result<Self, CryptoError> {
        const WHAT: &str = "session key blob";
        if blob.len() < 12 {
            return Err(CryptoError::Truncated {
                what: WHAT,
                available: blob.len(),
                needed: 12,
            });
        }
        if blob[0] != SIMPLEBLOB {
            return Err(CryptoError::InvalidField {
                what: WHAT,
                field: "bType",
                value: u32::from(blob[0]),
            });
        }
        let alg = u32_at(blob, 4);
        if alg != CALG_AES_256 {
            return Err(CryptoError::InvalidField {
                what: WHAT,
                field: "aiKeyAlg",
                value: alg,
            });
        }
        let mut ct = blob[12..].to_vec();
        ct.reverse();
        let pt = key
            .decrypt(Pkcs1v15Encrypt, &ct)
            .map_err(|_| CryptoError::Rsa("decryption"))?;
        let bytes: [u8; 32] = pt
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::KeyLength(pt.len()))?;
        Ok(SessionKey(bytes))
    }

    /// Encrypts a SecureString's text; returns the base64 `<SS>` content.
    pub fn encrypt_secure_string(&self, plain: &str) -> String {
        let utf16: Vec<u8> = plain.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let enc = cbc::Encryptor::<Aes256>::new(&self.0.into(), &[0u8; 16].into());
        let ct = enc.encrypt_padded_vec_mut::<Pkcs7>(&utf16);
        base64::engine::general_purpose::STANDARD.encode(ct)
    }

    /// Decrypts the base64 `<SS>` content.
    pub fn decrypt_secure_string(&self, b64: &str) -> Result<String, CryptoError> {
        let ct = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| CryptoError::Base64("securestring"))?;
        let dec = cbc::Decryptor::<Aes256>::new(&self.0.into(), &[0u8; 16].into());
        let pt = dec
            .decrypt_padded_vec_mut::<Pkcs7>(&ct)
            .map_err(|_| CryptoError::Decrypt)?;
        let units: Vec<u16> = pt
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| CryptoError::Utf16)
    }
}
