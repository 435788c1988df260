//! The rustls crypto provider: what rustls's ring provider offers (the same cipher
//! suites, key exchange groups, signature algorithms and key types), assembled here so
//! that P-256 can come from RustCrypto's `p256` on x86_64 and aarch64, where ring's
//! P-256 brings a 151 KB table (see [`super::p256`]). Everything else is ring, through
//! rustls and webpki as before.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm};
use rustls::crypto::ring as r;
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, SupportedKxGroup,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};
use std::sync::Arc;
use webpki::ring as algs;

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
))]
use super::p256::{ECDSA_P256_SHA256, ECDSA_P256_SHA384, KX as P256_KX};
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
)))]
use {
    algs::{ECDSA_P256_SHA256, ECDSA_P256_SHA384},
    r::kx_group::SECP256R1 as P256_KX,
};

/// The provider every webhook's TLS settings use.
pub fn provider() -> Arc<CryptoProvider> {
    let kx: [&'static dyn SupportedKxGroup; 3] =
        [r::kx_group::X25519, P256_KX, r::kx_group::SECP384R1];
    Arc::new(CryptoProvider {
        cipher_suites: r::DEFAULT_CIPHER_SUITES.to_vec(),
        kx_groups: kx.to_vec(),
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &Ring,
        key_provider: &Ring,
    })
}

/// The algorithms webpki may check certificates with, and which TLS signature scheme
/// uses which of them (for TLS 1.2 the curve is not fixed by the scheme).
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        ECDSA_P256_SHA256,
        ECDSA_P256_SHA384,
        algs::ECDSA_P384_SHA256,
        algs::ECDSA_P384_SHA384,
        algs::ED25519,
        algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        algs::RSA_PKCS1_2048_8192_SHA256,
        algs::RSA_PKCS1_2048_8192_SHA384,
        algs::RSA_PKCS1_2048_8192_SHA512,
        algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[algs::ECDSA_P384_SHA384, ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[ECDSA_P256_SHA256, algs::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[algs::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[algs::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[algs::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[algs::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// Randomness and private keys from ring.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        ring::rand::SecureRandom::fill(&SystemRandom::new(), buf).map_err(|_| GetRandomFailed)
    }
}

impl KeyProvider for Ring {
    /// A client key: RSA (PKCS#1 or PKCS#8), ECDSA P-256 or P-384 (PKCS#8 or SEC1), or
    /// Ed25519 (PKCS#8), tried in that order, as rustls's ring provider does.
    fn load_private_key(&self, der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        if let Ok(rsa) = r::sign::RsaSigningKey::new(&der) {
            return Ok(Arc::new(rsa));
        }
        if let Some(key) = p256_key(&der) {
            return Ok(key);
        }
        if let Some(key) = RingEcdsa::new(&der, P384) {
            return Ok(Arc::new(key));
        }
        if let PrivateKeyDer::Pkcs8(pkcs8) = &der {
            if let Ok(key) = r::sign::any_eddsa_type(pkcs8) {
                return Ok(key);
            }
        }
        Err(Error::General(
            "failed to parse private key as RSA, ECDSA or EdDSA".into(),
        ))
    }
}

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
))]
fn p256_key(der: &PrivateKeyDer<'_>) -> Option<Arc<dyn SigningKey>> {
    super::p256::signing_key(der)
}

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
)))]
fn p256_key(der: &PrivateKeyDer<'_>) -> Option<Arc<dyn SigningKey>> {
    RingEcdsa::new(der, P256).map(|k| Arc::new(k) as Arc<dyn SigningKey>)
}

/// One ECDSA curve as ring signs with it.
struct Curve {
    scheme: SignatureScheme,
    signing: &'static EcdsaSigningAlgorithm,
    /// The DER of the curve's OID (RFC 5480), for wrapping a SEC1 key into PKCS#8.
    oid: &'static [u8],
}

#[cfg_attr(
    any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_endian = "little")
    ),
    allow(dead_code)
)]
const P256: Curve = Curve {
    scheme: SignatureScheme::ECDSA_NISTP256_SHA256,
    signing: &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    oid: b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07",
};

const P384: Curve = Curve {
    scheme: SignatureScheme::ECDSA_NISTP384_SHA384,
    signing: &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
    oid: b"\x06\x05\x2b\x81\x04\x00\x22",
};

/// An ECDSA client key signed with by ring, for exactly one signature scheme.
#[derive(Clone)]
struct RingEcdsa {
    key: Arc<EcdsaKeyPair>,
    scheme: SignatureScheme,
}

impl std::fmt::Debug for RingEcdsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ECDSA key for {:?}", self.scheme)
    }
}

impl RingEcdsa {
    fn new(der: &PrivateKeyDer<'_>, curve: Curve) -> Option<RingEcdsa> {
        let rng = SystemRandom::new();
        let key = match der {
            PrivateKeyDer::Pkcs8(k) => {
                EcdsaKeyPair::from_pkcs8(curve.signing, k.secret_pkcs8_der(), &rng)
            }
            PrivateKeyDer::Sec1(k) => EcdsaKeyPair::from_pkcs8(
                curve.signing,
                &sec1_to_pkcs8(curve.oid, k.secret_sec1_der()),
                &rng,
            ),
            _ => return None,
        };
        Some(RingEcdsa {
            key: Arc::new(key.ok()?),
            scheme: curve.scheme,
        })
    }
}

impl SigningKey for RingEcdsa {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&self.scheme)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

impl Signer for RingEcdsa {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.key
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::General("ECDSA signing failed".into()))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// A SEC1 `ECPrivateKey` (RFC 5915) as the PKCS#8 `PrivateKeyInfo` ring reads (RFC 5208):
/// `SEQUENCE { INTEGER 0, SEQUENCE { id-ecPublicKey, curve }, OCTET STRING { sec1 } }`.
fn sec1_to_pkcs8(curve_oid: &[u8], sec1: &[u8]) -> Vec<u8> {
    const EC_PUBLIC_KEY: &[u8] = b"\x06\x07\x2a\x86\x48\xce\x3d\x02\x01";
    let mut algorithm = EC_PUBLIC_KEY.to_vec();
    algorithm.extend_from_slice(curve_oid);
    let mut body = b"\x02\x01\x00".to_vec();
    der_push(&mut body, 0x30, &algorithm);
    der_push(&mut body, 0x04, sec1);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_push(&mut out, 0x30, &body);
    out
}

/// Appends one DER element: tag, definite length (short or long form), content.
fn der_push(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let n = content.len();
    match n {
        0..=0x7f => out.push(n as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, n as u8]),
        _ => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    #[test]
    fn der_lengths_take_the_short_and_both_long_forms() {
        let mut v = Vec::new();
        der_push(&mut v, 0x04, &[7; 3]);
        assert_eq!(v, [0x04, 3, 7, 7, 7]);
        let mut v = Vec::new();
        der_push(&mut v, 0x04, &[0; 200]);
        assert_eq!(&v[..3], &[0x04, 0x81, 200]);
        assert_eq!(v.len(), 203);
        let mut v = Vec::new();
        der_push(&mut v, 0x30, &[0; 300]);
        assert_eq!(&v[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(v.len(), 304);
    }

    /// ring's PKCS#8 for a new key on `alg`, and the SEC1 key inside it (the OCTET
    /// STRING after the algorithm identifier at `at`, whose length takes `len_bytes`).
    fn ring_key(
        alg: &'static EcdsaSigningAlgorithm,
        at: usize,
        len_bytes: usize,
    ) -> (Vec<u8>, Vec<u8>) {
        let p8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        let p8 = p8.as_ref().to_vec();
        assert_eq!(p8[at], 0x04, "an OCTET STRING at {at}");
        let sec1 = p8[at + 1 + len_bytes..].to_vec();
        (p8, sec1)
    }

    #[test]
    fn a_sec1_key_wrapped_is_byte_for_byte_the_pkcs8_ring_made() {
        let (p8, sec1) = ring_key(P384.signing, 24, 2);
        assert_eq!(sec1_to_pkcs8(P384.oid, &sec1), p8);
        let (p8, sec1) = ring_key(P256.signing, 27, 1);
        assert_eq!(sec1_to_pkcs8(P256.oid, &sec1), p8);
    }

    /// A client key on each curve, as PKCS#8 and as SEC1, loads, offers only its own
    /// scheme and signs what ring verifies (P-256 is RustCrypto's on x86_64 and aarch64).
    #[test]
    fn an_ecdsa_client_key_in_either_form_signs_what_ring_verifies() {
        use rustls::pki_types::{PrivatePkcs8KeyDer, PrivateSec1KeyDer};
        for (curve, at, len_bytes, verify, other) in [
            (
                P256,
                27,
                1,
                &signature::ECDSA_P256_SHA256_ASN1,
                SignatureScheme::ED25519,
            ),
            (
                P384,
                24,
                2,
                &signature::ECDSA_P384_SHA384_ASN1,
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ),
        ] {
            let (p8, sec1) = ring_key(curve.signing, at, len_bytes);
            let public = EcdsaKeyPair::from_pkcs8(curve.signing, &p8, &SystemRandom::new())
                .unwrap()
                .public_key()
                .as_ref()
                .to_vec();
            let ders = [
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p8)),
                PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(sec1)),
            ];
            for der in ders {
                let key = Ring.load_private_key(der).unwrap();
                assert!(key.choose_scheme(&[other]).is_none());
                let signer = key.choose_scheme(&[curve.scheme]).unwrap();
                let sig = signer.sign(b"handshake transcript").unwrap();
                let v = signature::UnparsedPublicKey::new(verify, &public);
                v.verify(b"handshake transcript", &sig).unwrap();
                assert!(v.verify(b"handshake transcripT", &sig).is_err());
            }
        }
    }

    #[test]
    fn p256_signatures_from_ring_verify_and_tampering_fails() {
        let rng = SystemRandom::new();
        {
            let (signing, ours) = (
                &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                ECDSA_P256_SHA256,
            );
            let p8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
            let key = EcdsaKeyPair::from_pkcs8(signing, p8.as_ref(), &rng).unwrap();
            let public = key.public_key().as_ref();
            for i in 0..8 {
                let msg = format!("certificate {i}");
                let sig = key.sign(&rng, msg.as_bytes()).unwrap();
                ours.verify_signature(public, msg.as_bytes(), sig.as_ref())
                    .unwrap();
                assert!(ours
                    .verify_signature(public, b"certificate x", sig.as_ref())
                    .is_err());
                let mut bad = sig.as_ref().to_vec();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(ours.verify_signature(public, msg.as_bytes(), &bad).is_err());
                assert!(ours
                    .verify_signature(&public[..64], msg.as_bytes(), sig.as_ref())
                    .is_err());
            }
        }
    }

    #[test]
    fn p256_key_exchange_agrees_with_ring_and_refuses_bad_points() {
        use ring::agreement;
        let rng = SystemRandom::new();
        for _ in 0..4 {
            let ours = P256_KX.start().unwrap();
            assert_eq!(ours.group(), rustls::NamedGroup::secp256r1);
            let theirs =
                agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).unwrap();
            let their_public = theirs.compute_public_key().unwrap();
            let peer =
                agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ours.pub_key().to_vec());
            let want = agreement::agree_ephemeral(theirs, &peer, |s| s.to_vec()).unwrap();
            let got = ours.complete(their_public.as_ref()).unwrap();
            assert_eq!(got.secret_bytes(), &want[..]);
        }
        let good = P256_KX.start().unwrap().pub_key().to_vec();
        let mut off_curve = good.clone();
        off_curve[64] ^= 1;
        let mut compressed = vec![2 | (good[64] & 1)];
        compressed.extend_from_slice(&good[1..33]);
        for bad in [
            &off_curve[..],
            &compressed[..],
            &good[..64],
            &[0u8][..],
            &[][..],
        ] {
            assert!(P256_KX.start().unwrap().complete(bad).is_err(), "{bad:?}");
        }
    }
}
