//! P-256 from a TLS peer, checked against ring: the ECDSA signatures and public keys of
//! certificates and handshakes, and the server's ECDHE key share. On x86_64 and aarch64
//! tocsin verifies and agrees with RustCrypto's `p256` instead of ring's P-256 (for size),
//! so the invariant is that both accept exactly the same inputs.
//!
//! Input: a selector byte, then an edit (offset, bytes to drop, bytes to insert) applied
//! to a valid value, so that the search starts next to inputs that verify:
//! - 0: the DER signature of a fixed message by a fixed key;
//! - 1: that key's SEC1 public key (uncompressed), with the signature left valid;
//! - 2: the message itself, signature and key valid;
//! - 3: a key share (a valid uncompressed point of the curve).
//!
//! The key, signature and share are new in each process (ring signs with a random nonce
//! and makes keys only at random), so a failure prints the values it compared.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use std::sync::OnceLock;
use tocsin::fuzzing::{p256_accepts_key_share, p256_verify};

struct Fixed {
    public: Vec<u8>,
    signature: Vec<u8>,
    share: Vec<u8>,
}

const MESSAGE: &[u8] = b"tocsin handshake transcript";

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let key = || {
            let p8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            EcdsaKeyPair::from_pkcs8(alg, p8.as_ref(), &rng).unwrap()
        };
        let signer = key();
        Fixed {
            public: signer.public_key().as_ref().to_vec(),
            signature: signer.sign(&rng, MESSAGE).unwrap().as_ref().to_vec(),
            share: key().public_key().as_ref().to_vec(),
        }
    })
}

fn edit(base: &[u8], data: &[u8]) -> Vec<u8> {
    let (at, cut, insert) = match data {
        [at, cut, rest @ ..] => (*at as usize % (base.len() + 1), *cut as usize, rest),
        _ => return base.to_vec(),
    };
    let end = (at + cut).min(base.len());
    let mut v = base[..at].to_vec();
    v.extend_from_slice(&insert[..insert.len().min(128)]);
    v.extend_from_slice(&base[end..]);
    v
}

fn ring_verifies(public: &[u8], message: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public)
        .verify(message, sig)
        .is_ok()
}

fn ring_accepts_share(peer: &[u8]) -> bool {
    use ring::agreement;
    let ours = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &SystemRandom::new())
        .unwrap();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer);
    agreement::agree_ephemeral(ours, &peer, |_| ()).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let f = fixed();
    match mode % 4 {
        0 | 1 | 2 => {
            let (mut public, mut message, mut sig) =
                (f.public.clone(), MESSAGE.to_vec(), f.signature.clone());
            match mode % 4 {
                0 => sig = edit(&sig, data),
                1 => public = edit(&public, data),
                _ => message = edit(&message, data),
            }
            let ours = p256_verify(&public, &message, &sig);
            let theirs = ring_verifies(&public, &message, &sig);
            assert_eq!(
                ours, theirs,
                "ours {ours}, ring {theirs}: key {public:02x?} sig {sig:02x?} message {message:02x?}"
            );
        }
        _ => {
            let share = edit(&f.share, data);
            let ours = p256_accepts_key_share(&share);
            let theirs = ring_accepts_share(&share);
            assert_eq!(ours, theirs, "ours {ours}, ring {theirs}: share {share:02x?}");
        }
    }
});
