//! The PROXY protocol, version 2 (haproxy's proxy-protocol.txt §2.2): how
//! the proxy tells an MTA who the real client is, and that a health check
//! is not a client at all. Pure encoding, no I/O.

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature every v2 header starts with.
const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// Version 2, PROXY command: the connection is relayed for `source`.
const PROXY: u8 = 0x21;
/// Version 2, LOCAL command: the proxy speaks for itself (health checks).
const LOCAL: u8 = 0x20;

/// A LOCAL header: the MTA treats the session as the proxy's own.
pub fn local_header() -> Vec<u8> {
    let mut header = SIGNATURE.to_vec();
    header.extend_from_slice(&[LOCAL, 0x00, 0, 0]);
    header
}

/// A PROXY header for a TCP connection from `source` to `destination`,
/// with `tlvs` appended (see [`ssl_tlv`]).
pub fn header(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut header = SIGNATURE.to_vec();
    header.push(PROXY);
    match (source, destination) {
        (SocketAddr::V4(source), SocketAddr::V4(destination)) => {
            header.push(0x11); // TCP over IPv4
            header.extend_from_slice(&(12 + tlvs.len() as u16).to_be_bytes());
            header.extend_from_slice(&source.ip().octets());
            header.extend_from_slice(&destination.ip().octets());
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
        _ => {
            let v6 = |address: SocketAddr| match address.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            header.push(0x21); // TCP over IPv6
            header.extend_from_slice(&(36 + tlvs.len() as u16).to_be_bytes());
            header.extend_from_slice(&v6(source).octets());
            header.extend_from_slice(&v6(destination).octets());
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
    header.extend_from_slice(tlvs);
    header
}

/// The TLV that tells the MTA the client used TLS (PP2_TYPE_SSL with the
/// protocol version), so its own TLS-dependent rules can apply.
pub fn ssl_tlv(version: &str) -> Vec<u8> {
    const PP2_TYPE_SSL: u8 = 0x20;
    const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
    const PP2_CLIENT_SSL: u8 = 0x01;
    let mut value = vec![PP2_CLIENT_SSL];
    // verify = 1: the client presented no certificate that was verified.
    value.extend_from_slice(&1u32.to_be_bytes());
    value.push(PP2_SUBTYPE_SSL_VERSION);
    value.extend_from_slice(&(version.len() as u16).to_be_bytes());
    value.extend_from_slice(version.as_bytes());
    let mut tlv = vec![PP2_TYPE_SSL];
    tlv.extend_from_slice(&(value.len() as u16).to_be_bytes());
    tlv.extend_from_slice(&value);
    tlv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_header_layout() {
        let v4 = header("192.0.2.7:4567".parse().unwrap(), "198.51.100.1:25".parse().unwrap(), &[]);
        assert_eq!(v4.len(), 16 + 12);
        assert_eq!(&v4[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&v4[16..20], &[192, 0, 2, 7]);
        assert_eq!(&v4[24..26], &4567u16.to_be_bytes());
        let v6 = header("[2001:db8::1]:1000".parse().unwrap(), "[2001:db8::2]:25".parse().unwrap(), &[]);
        assert_eq!(v6.len(), 16 + 36);
        assert_eq!(v6[13], 0x21);
        let with_tls = header("192.0.2.7:4567".parse().unwrap(), "198.51.100.1:25".parse().unwrap(), &[0x20, 0, 0]);
        assert_eq!(&with_tls[14..16], &15u16.to_be_bytes());
        assert_eq!(&with_tls[28..], &[0x20, 0, 0]);
    }

    #[test]
    fn local_header_layout() {
        assert_eq!(
            local_header(),
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0, 0]
        );
    }

    #[test]
    fn ssl_tlv_layout() {
        let tlv = ssl_tlv("TLSv1.3");
        assert_eq!(tlv[0], 0x20);
        assert_eq!(u16::from_be_bytes([tlv[1], tlv[2]]) as usize, tlv.len() - 3);
        assert_eq!(tlv[3], 0x01);
        assert_eq!(&tlv[8..11], &[0x21, 0, 7]);
        assert_eq!(&tlv[11..], b"TLSv1.3");
    }
}
