//! P-256 (secp256r1) for TLS on x86_64 and aarch64, from RustCrypto's `p256` crate.
//!
//! Why not ring's: on these two CPUs ring computes P-256 with its nistz256 assembly, whose
//! precomputed table of base-point multiples alone is 151,552 bytes of read-only data,
//! linked in as soon as anything can reach P-256 (key exchange, certificate and
//! handshake signatures, or an ECDSA client key). Elsewhere ring uses portable code with
//! a 1.9 KB table, and tocsin keeps it there. The `p256` crate's constant-time portable
//! arithmetic is about 25 KB on aarch64, so the agent is about 130 KB smaller on the
//! two targets where the table was, and P-256 costs a little more CPU per handshake.
//!
//! Three parts, each what rustls's ring provider offers for P-256:
//! - [`KX`]: ECDHE over secp256r1 (RFC 8446 §4.2.8.2: uncompressed points only);
//! - [`ECDSA_P256_SHA256`], [`ECDSA_P256_SHA384`]: signature verification for webpki
//!   and the handshake (a DER `ECDSA-Sig-Value`, RFC 5480);
//! - [`signing_key`]: an ECDSA P-256 client key (PKCS#8 or SEC1), signing with RFC 6979
//!   nonces.

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm,
};
use rustls::{Error, NamedGroup, PeerMisbehaved, SignatureAlgorithm, SignatureScheme};
use std::sync::Arc;

/// 32 random bytes from the system (`getrandom`), as ring draws them for its own keys.
fn random32() -> Result<[u8; 32], Error> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| rustls::crypto::GetRandomFailed)?;
    Ok(b)
}

/// ECDHE over secp256r1.
pub static KX: &dyn SupportedKxGroup = &Secp256r1;

#[derive(Debug)]
struct Secp256r1;

impl SupportedKxGroup for Secp256r1 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        // A uniformly random scalar: 32 random bytes are rejected only when ≥ n or zero
        // (probability about 2^-32), so a few draws always suffice.
        for _ in 0..8 {
            if let Ok(secret) = p256::SecretKey::from_bytes(&random32()?.into()) {
                let point = secret.public_key().to_encoded_point(false);
                return Ok(Box::new(Exchange {
                    secret,
                    public: point.as_bytes().to_vec(),
                }));
            }
        }
        Err(rustls::crypto::GetRandomFailed.into())
    }

    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

struct Exchange {
    secret: p256::SecretKey,
    public: Vec<u8>,
}

impl ActiveKeyExchange for Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // TLS sends an uncompressed point (0x04, x, y); `from_sec1_bytes` then checks that
        // it is on the curve and not the identity.
        let peer = match peer {
            [4, ..] if peer.len() == 65 => p256::PublicKey::from_sec1_bytes(peer).ok(),
            _ => None,
        }
        .ok_or(PeerMisbehaved::InvalidKeyShare)?;
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// ECDSA over P-256 with SHA-256.
pub static ECDSA_P256_SHA256: &dyn SignatureVerificationAlgorithm = &Verify {
    digest: &ring::digest::SHA256,
    signature_alg_id: alg_id::ECDSA_SHA256,
};

/// ECDSA over P-256 with SHA-384 (allowed by webpki and TLS 1.2, deprecated).
pub static ECDSA_P256_SHA384: &dyn SignatureVerificationAlgorithm = &Verify {
    digest: &ring::digest::SHA384,
    signature_alg_id: alg_id::ECDSA_SHA384,
};

#[derive(Debug)]
struct Verify {
    digest: &'static ring::digest::Algorithm,
    signature_alg_id: AlgorithmIdentifier,
}

impl SignatureVerificationAlgorithm for Verify {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        // Uncompressed points only, as ring accepts them: a certificate's P-256 key
        // verifies here exactly when it did with ring.
        if public_key.len() != 65 || public_key[0] != 4 {
            return Err(InvalidSignature);
        }
        let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let sig = Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        // A SHA-384 hash is cut to its leftmost 256 bits (FIPS 186-4 §6.4), as ring does.
        let hash = ring::digest::digest(self.digest, message);
        key.verify_prehash(hash.as_ref(), &sig)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg_id
    }
}

/// Whether `peer` is a key share [`KX`] completes an exchange with (fuzzing's entry).
pub fn accepts_key_share(peer: &[u8]) -> bool {
    KX.start().is_ok_and(|kx| kx.complete(peer).is_ok())
}

/// An ECDSA P-256 private key in PKCS#8 or SEC1 form, as a rustls signing key; `None` when
/// `der` is not one.
pub fn signing_key(der: &PrivateKeyDer<'_>) -> Option<Arc<dyn rustls::sign::SigningKey>> {
    use p256::pkcs8::DecodePrivateKey;
    let secret = match der {
        PrivateKeyDer::Pkcs8(k) => p256::SecretKey::from_pkcs8_der(k.secret_pkcs8_der()).ok()?,
        PrivateKeyDer::Sec1(k) => p256::SecretKey::from_sec1_der(k.secret_sec1_der()).ok()?,
        _ => return None,
    };
    Some(Arc::new(ClientKey(SigningKey::from(secret))))
}

struct ClientKey(SigningKey);

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ECDSA P-256 key")
    }
}

impl rustls::sign::SigningKey for ClientKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(ClientSigner(self.0.clone())) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct ClientSigner(SigningKey);

impl std::fmt::Debug for ClientSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ECDSA P-256 signer")
    }
}

impl rustls::sign::Signer for ClientSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let hash = ring::digest::digest(&ring::digest::SHA256, message);
        let sig: Signature = self
            .0
            .sign_prehash(hash.as_ref())
            .map_err(|_| Error::General("ECDSA P-256 signing failed".into()))?;
        let der: DerSignature = sig.to_der();
        Ok(der.as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA384_ASN1};

    /// The crate's signatures over SHA-256 and SHA-384 hashes verify with ring's P-256
    /// and with ours (ring cannot sign P-256 with SHA-384, so this direction is the test).
    #[test]
    fn signatures_made_here_verify_with_ring_and_with_ours() {
        for i in 0..8u8 {
            let key = SigningKey::from_slice(&[i + 1; 32]).unwrap();
            let public = key.verifying_key().to_encoded_point(false);
            let public = public.as_bytes();
            for (digest, theirs, ours) in [
                (
                    &ring::digest::SHA256,
                    &ECDSA_P256_SHA256_ASN1,
                    ECDSA_P256_SHA256,
                ),
                (
                    &ring::digest::SHA384,
                    &ECDSA_P256_SHA384_ASN1,
                    ECDSA_P256_SHA384,
                ),
            ] {
                let msg = [b'm', i];
                let hash = ring::digest::digest(digest, &msg);
                let sig: Signature = key.sign_prehash(hash.as_ref()).unwrap();
                let der = sig.to_der();
                UnparsedPublicKey::new(theirs, public)
                    .verify(&msg, der.as_bytes())
                    .unwrap();
                ours.verify_signature(public, &msg, der.as_bytes()).unwrap();
                assert!(ours
                    .verify_signature(public, b"other", der.as_bytes())
                    .is_err());
            }
        }
    }
}
