//! Chain names, computed as kube-proxy computes them.
//!
//! iptables (`kubernetes/pkg/proxy/iptables/proxier.go`, `portProtoHash` and
//! `servicePortEndpointChainName`): prefix + the first 16 characters of
//! `base32.StdEncoding(sha256(servicePortName + protocol [+ endpoint]))`.
//!
//! nftables (`kubernetes/pkg/proxy/nftables/proxier.go`, `hashAndTruncate`,
//! `servicePortChainNameBase`, `servicePortEndpointChainNameBase`): prefix + the first 8
//! characters of the same encoding of the readable name, `-`, the readable name
//! (`ns/svc/proto/port`, `ns/svc/proto/port__ip/port`), truncated to 240 characters.

use alloc::string::String;

use sha2::{Digest, Sha256};

use super::{Endpoint, EpText, ServicePort};

/// `base32.StdEncoding.EncodeToString(sha256(parts))[:N]` for N a multiple of 8 (whole
/// 5-byte groups, so no padding is involved).
fn hash_prefix<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    base32(&digest)
}

/// RFC 4648 base32 (Go's `base32.StdEncoding`) of the first `N / 8 * 5` bytes of `bytes`:
/// whole 5-byte groups, so no padding. A few lines rather than the data-encoding crate,
/// whose general encoder cost the WebAssembly module 16 KB raw (1.9 KB gzipped) for this one
/// use.
fn base32<const N: usize>(bytes: &[u8]) -> [u8; N] {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = [0u8; N];
    for (group, chars) in bytes.chunks_exact(5).zip(out.chunks_exact_mut(8)) {
        let bits = group.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        for (i, c) in chars.iter_mut().enumerate() {
            *c = ALPHABET[(bits >> (35 - 5 * i) & 31) as usize];
        }
    }
    out
}

fn push_ascii(s: &mut String, bytes: &[u8]) {
    s.extend(bytes.iter().map(|&b| b as char));
}

/// `KUBE-SVC-`/`KUBE-SVL-`/`KUBE-EXT-`/`KUBE-FW-` + `portProtoHash(servicePortName, protocol)`.
pub(crate) fn ipt_service_chain(prefix: &str, spn: &str, proto: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 16);
    s.push_str(prefix);
    push_ascii(
        &mut s,
        &hash_prefix::<16>(&[spn.as_bytes(), proto.as_bytes()]),
    );
    s
}

/// `KUBE-SEP-` + the hash of servicePortName + protocol + `ip:port`.
pub(crate) fn ipt_endpoint_chain(spn: &str, proto: &str, ep: &EpText) -> String {
    let mut s = String::with_capacity(25);
    s.push_str("KUBE-SEP-");
    push_ascii(
        &mut s,
        &hash_prefix::<16>(&[spn.as_bytes(), proto.as_bytes(), ep.as_str().as_bytes()]),
    );
    s
}

/// nftables' `knftables.NameLengthMax - chainNamePrefixLengthMax`.
const NFT_BASE_MAX: usize = 256 - 16;

/// `prefix + hashAndTruncate(name)`.
fn nft_hashed(prefix: &str, name: &str) -> String {
    let hash = hash_prefix::<8>(&[name.as_bytes()]);
    let mut base = String::with_capacity(9 + name.len());
    push_ascii(&mut base, &hash);
    base.push('-');
    base.push_str(name);
    if base.len() > NFT_BASE_MAX {
        base.truncate(NFT_BASE_MAX - 3);
        base.push_str("...");
    }
    let mut s = String::with_capacity(prefix.len() + base.len());
    s.push_str(prefix);
    s.push_str(&base);
    s
}

/// `ns/svc/proto/port`, the readable part of nftables Service chain names.
fn nft_service_base(svc: &ServicePort) -> String {
    let mut s =
        String::with_capacity(svc.namespace.len() + svc.name.len() + svc.port_name.len() + 8);
    s.push_str(&svc.namespace);
    s.push('/');
    s.push_str(&svc.name);
    s.push('/');
    s.push_str(svc.protocol.name());
    s.push('/');
    s.push_str(&svc.port_name);
    s
}

/// `service-`/`local-`/`external-`/`firewall-` + `servicePortChainNameBase`.
pub(crate) fn nft_service_chain(prefix: &str, svc: &ServicePort) -> String {
    nft_hashed(prefix, &nft_service_base(svc))
}

/// `endpoint-`/`affinity-` + `servicePortEndpointChainNameBase`.
pub(crate) fn nft_endpoint_chain(prefix: &str, svc: &ServicePort, ep: &Endpoint) -> String {
    let mut name = nft_service_base(svc);
    let _ = core::fmt::Write::write_fmt(&mut name, format_args!("__{}/{}", ep.ip, ep.port));
    nft_hashed(prefix, &name)
}

/// The iptables `KUBE-SVC-*` chain of a Service port.
pub fn service_chain_name(svc: &ServicePort) -> String {
    ipt_service_chain("KUBE-SVC-", &svc.port_name_string(), svc.protocol.name())
}

/// The iptables `KUBE-SEP-*` chain of one endpoint of a Service port.
pub fn endpoint_chain_name(svc: &ServicePort, ep: &Endpoint) -> String {
    ipt_endpoint_chain(
        &svc.port_name_string(),
        svc.protocol.name(),
        &EpText::new(ep.ip, ep.port),
    )
}

/// The nftables `service-*` chain of a Service port.
pub fn nft_service_chain_name(svc: &ServicePort) -> String {
    nft_service_chain("service-", svc)
}

/// The nftables `endpoint-*` chain of one endpoint of a Service port.
pub fn nft_endpoint_chain_name(svc: &ServicePort, ep: &Endpoint) -> String {
    nft_endpoint_chain("endpoint-", svc, ep)
}

#[cfg(test)]
mod tests {
    use super::base32;

    #[test]
    fn base32_is_rfc4648() {
        // RFC 4648 section 10 ("foobar" without its padded tail) and every bit position.
        assert_eq!(&base32::<8>(b"fooba"), b"MZXW6YTB");
        assert_eq!(&base32::<16>(b"foobarbazq"), b"MZXW6YTBOJRGC6TR");
        assert_eq!(
            &base32::<16>(&[250, 251, 252, 253, 254, 0, 1, 0x7f, 0x80, 0xff]),
            b"7L57Z7P6AAAX7AH7"
        );
    }
}
