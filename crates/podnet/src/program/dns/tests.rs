//! DNS codec, zone and resolver tests.
use super::*;
use crate::rng::{SimRng, Stream};

fn zone() -> Zone {
    Zone::new(&[
        (
            String::from("web.default.svc.cluster.local."),
            Ipv4Address::new(10, 96, 0, 20),
        ),
        (
            String::from("db.prod.svc.cluster.local"),
            Ipv4Address::new(10, 244, 1, 5),
        ),
        (
            String::from("DB.prod.svc.cluster.local"),
            Ipv4Address::new(10, 244, 2, 5),
        ),
    ])
}

#[test]
fn query_bytes() {
    let q = encode_query(0x1234, "web.default.svc.cluster.local", TYPE_A).unwrap();
    let mut want = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["web", "default", "svc", "cluster", "local"] {
        want.push(l.len() as u8);
        want.extend_from_slice(l.as_bytes());
    }
    want.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(q, want);
    // The final dot changes nothing; invalid names are refused.
    assert_eq!(
        encode_query(0x1234, "web.default.svc.cluster.local.", TYPE_A),
        Some(q)
    );
    assert_eq!(encode_query(1, "a..b", TYPE_A), None);
    assert_eq!(encode_query(1, &"x".repeat(64), TYPE_A), None);
    let long = ["abcdefghij"; 25].join(".");
    assert_eq!(encode_query(1, &long, TYPE_A), None, "over 255 bytes");
    assert_eq!(encode_query(1, ".", TYPE_A).unwrap()[12..], [0, 0, 1, 0, 1]);
}

#[test]
fn answer_bytes() {
    let q = encode_query(0xbeef, "Web.Default.svc.cluster.local", TYPE_A).unwrap();
    let a = zone().respond(&q, UDP_MAX).unwrap();
    // id, QR AA RD RA NOERROR, 1 question, 1 answer.
    assert_eq!(a[..12], [0xbe, 0xef, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    // The question comes back as sent.
    assert_eq!(a[12..q.len()], q[12..]);
    let rr = &a[q.len()..];
    assert_eq!(
        rr,
        [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 20]
    );
    let m = Message::parse(&a).unwrap();
    assert_eq!(m.header.rcode(), rcode::NOERROR);
    assert_eq!(m.questions[0].name, "web.default.svc.cluster.local");
    assert_eq!(m.answers[0].name, "web.default.svc.cluster.local");
    assert_eq!(m.answers[0].ttl, TTL);
    assert_eq!(m.answers[0].a(), Some(Ipv4Address::new(10, 96, 0, 20)));
}

#[test]
fn several_addresses_and_truncation() {
    let q = encode_query(7, "db.prod.svc.cluster.local", TYPE_A).unwrap();
    let m = Message::parse(&zone().respond(&q, UDP_MAX).unwrap()).unwrap();
    let ips: Vec<_> = m.answers.iter().filter_map(Record::a).collect();
    assert_eq!(
        ips,
        [
            Ipv4Address::new(10, 244, 1, 5),
            Ipv4Address::new(10, 244, 2, 5)
        ]
    );
    assert!(!m.header.truncated());
    // Room for one answer only.
    let m = Message::parse(&zone().respond(&q, q.len() + 16).unwrap()).unwrap();
    assert_eq!(m.answers.len(), 1);
    assert!(m.header.truncated());
    // Many addresses over UDP: cut at 512 bytes.
    let many: Vec<(String, Ipv4Address)> = (0..100u8)
        .map(|i| (String::from("big.x"), Ipv4Address::new(10, 0, 0, i)))
        .collect();
    let q = encode_query(8, "big.x", TYPE_A).unwrap();
    let a = Zone::new(&many).respond(&q, UDP_MAX).unwrap();
    assert!(a.len() <= UDP_MAX);
    let m = Message::parse(&a).unwrap();
    assert!(m.header.truncated() && m.answers.len() == (UDP_MAX - q.len()) / 16);
    let m = Message::parse(&Zone::new(&many).respond(&q, TCP_MAX).unwrap()).unwrap();
    assert!(!m.header.truncated() && m.answers.len() == 100);
}

#[test]
fn nxdomain_nodata_and_errors() {
    let z = zone();
    let ask = |q: &[u8]| Message::parse(&z.respond(q, UDP_MAX).unwrap()).unwrap();
    let nx = ask(&encode_query(
        1,
        "web.default.svc.cluster.local.default.svc.cluster.local",
        TYPE_A,
    )
    .unwrap());
    assert_eq!(nx.header.rcode(), rcode::NXDOMAIN);
    assert_eq!(nx.header.flags & AA, AA);
    assert!(nx.answers.is_empty());
    assert_eq!(nx.questions.len(), 1);
    // AAAA of a known name: NOERROR, no answer.
    let aaaa = ask(&encode_query(2, "web.default.svc.cluster.local", TYPE_AAAA).unwrap());
    assert_eq!(aaaa.header.rcode(), rcode::NOERROR);
    assert!(aaaa.answers.is_empty());
    // A parent of names: NOERROR, no answer.
    let parent = ask(&encode_query(3, "svc.cluster.local", TYPE_A).unwrap());
    assert_eq!(parent.header.rcode(), rcode::NOERROR);
    assert!(parent.answers.is_empty());
    // Opcode STATUS (2): NOTIMP.
    let mut status = encode_query(4, "web.default.svc.cluster.local", TYPE_A).unwrap();
    status[2] |= 2 << 3;
    let m = ask(&status);
    assert_eq!(m.header.rcode(), rcode::NOTIMP);
    assert_eq!(m.header.opcode(), 2);
    // Class CH: REFUSED.
    let mut chaos = encode_query(5, "web.default.svc.cluster.local", TYPE_A).unwrap();
    let n = chaos.len();
    chaos[n - 1] = 3;
    assert_eq!(ask(&chaos).header.rcode(), rcode::REFUSED);
    // Two questions, or a question cut short: FORMERR with the id.
    let mut two = encode_query(6, "a", TYPE_A).unwrap();
    two[5] = 2;
    let m = ask(&two);
    assert_eq!((m.header.id, m.header.rcode()), (6, rcode::FORMERR));
    let q = encode_query(9, "web.default.svc.cluster.local", TYPE_A).unwrap();
    let m = ask(&q[..q.len() - 1]);
    assert_eq!((m.header.id, m.header.rcode()), (9, rcode::FORMERR));
    // No header, or a response: ignored.
    assert_eq!(z.respond(&q[..11], UDP_MAX), None);
    let answer = z.respond(&q, UDP_MAX).unwrap();
    assert_eq!(z.respond(&answer, UDP_MAX), None);
}

#[test]
fn compression_pointers_only_go_back() {
    // A pointer to itself, and one forward: malformed, not a loop.
    let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
    assert_eq!(Message::parse(&m), None);
    m[13] = 14;
    assert_eq!(Message::parse(&m), None);
    assert_eq!(
        zone().respond(&m, UDP_MAX).map(|a| a[3] & 0xf),
        Some(rcode::FORMERR)
    );
    // Reserved label types.
    m[12] = 0x40;
    assert_eq!(Message::parse(&m), None);
}

#[test]
fn tcp_framing() {
    let z = zone();
    let q = encode_query(0x0102, "web.default.svc.cluster.local", TYPE_A).unwrap();
    let mut request = Vec::new();
    for _ in 0..2 {
        request.extend_from_slice(&(q.len() as u16).to_be_bytes());
        request.extend_from_slice(&q);
    }
    request.push(0); // the start of a third length
    let mut pending = Vec::new();
    serve_tcp(&z, &mut request, &mut pending);
    assert_eq!(request, [0]);
    let one = z.respond(&q, TCP_MAX).unwrap();
    let mut want = Vec::new();
    for _ in 0..2 {
        want.extend_from_slice(&(one.len() as u16).to_be_bytes());
        want.extend_from_slice(&one);
    }
    assert_eq!(pending, want);
}

#[test]
fn search_list_like_glibc_with_ndots_5() {
    let r = Resolve::cluster("web", Ipv4Address::new(10, 96, 0, 10), "default");
    assert_eq!(
        r.candidates(),
        [
            "web.default.svc.cluster.local",
            "web.svc.cluster.local",
            "web.cluster.local",
            "web"
        ]
    );
    let fqdn = Resolve {
        name: String::from("web.default.svc.cluster.local"),
        ..r.clone()
    };
    assert_eq!(
        fqdn.candidates()[0],
        "web.default.svc.cluster.local.default.svc.cluster.local"
    );
    assert_eq!(fqdn.candidates()[3], "web.default.svc.cluster.local");
    let abs = Resolve {
        name: String::from("web.default.svc.cluster.local."),
        ..r.clone()
    };
    assert_eq!(abs.candidates(), ["web.default.svc.cluster.local"]);
    let deep = Resolve {
        name: String::from("a.b.c.d.e.f"),
        ..r
    };
    assert_eq!(deep.candidates()[0], "a.b.c.d.e.f");
    assert_eq!(deep.candidates().len(), 4);
}

#[test]
fn garbage_never_panics() {
    let z = zone();
    let mut rng = SimRng::derive(7, Stream::Node(0));
    let seeds = [
        encode_query(1, "web.default.svc.cluster.local", TYPE_A).unwrap(),
        z.respond(
            &encode_query(2, "db.prod.svc.cluster.local", TYPE_A).unwrap(),
            UDP_MAX,
        )
        .unwrap(),
    ];
    // Every truncation of valid messages.
    for s in &seeds {
        for n in 0..=s.len() {
            let _ = Message::parse(&s[..n]);
            let _ = z.respond(&s[..n], UDP_MAX);
            let mut req = s[..n].to_vec();
            let mut out = Vec::new();
            serve_tcp(&z, &mut req, &mut out);
        }
    }
    for round in 0..20_000u32 {
        let mut buf = if round % 2 == 0 {
            let len = rng.range_inclusive(0, 80) as usize;
            (0..len).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()
        } else {
            seeds[(round as usize / 2) % 2].clone()
        };
        // Flip a few bytes.
        for _ in 0..rng.range_inclusive(0, 4) {
            if !buf.is_empty() {
                let i = rng.range_inclusive(0, buf.len() as u32 - 1) as usize;
                buf[i] = rng.next_u64() as u8;
            }
        }
        let _ = Message::parse(&buf);
        if let Some(a) = z.respond(&buf, UDP_MAX) {
            assert!(a.len() <= UDP_MAX);
            assert!(a.len() >= 12);
            assert!(Message::parse(&a).is_some(), "our answers always parse");
        }
        let mut req = buf.clone();
        let mut out = Vec::new();
        serve_tcp(&z, &mut req, &mut out);
    }
}
