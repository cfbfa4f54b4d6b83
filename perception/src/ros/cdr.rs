//! OMG CDR (XCDR1) as ROS 2's rmw layers write it: a 4-byte encapsulation header (plain CDR,
//! big- or little-endian) followed by the fields, each primitive aligned to its own size counted
//! from the first byte after the header; strings carry their length including a NUL; `T[]`
//! sequences a `uint32` count; fixed arrays no count; no trailing padding.
//!
//! [`CdrReader`] reads either byte order and never trusts a length before checking it against
//! the bytes that are there. [`CdrWriter`] writes little-endian, as every ROS 2 machine we know
//! of does.

/// Why a CDR payload could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CdrError {
    /// The payload ended early.
    #[error("CDR payload ends at byte {len} while reading {field} (needs {needed} more bytes)")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Payload length.
        len: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// The encapsulation header names a representation we do not read.
    #[error(
        "CDR encapsulation {0:#06x} is not plain CDR (expected 0x0000 big-endian or 0x0001 little-endian)"
    )]
    Encapsulation(u16),
    /// A string is not NUL-terminated UTF-8.
    #[error("CDR string field {0} is not NUL-terminated UTF-8")]
    BadString(&'static str),
    /// A string or sequence is longer than CDR's 32-bit length can say.
    #[error("CDR field {field} holds {len} elements; CDR lengths stop at 4294967295")]
    TooLong {
        /// Field being written.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A value is not what the message allows (e.g. a zero-length quaternion).
    #[error("field {field}: {what}")]
    Value {
        /// The field.
        field: &'static str,
        /// What is wrong and what was expected.
        what: String,
    },
}

/// A cursor over a CDR body.
pub struct CdrReader<'a> {
    data: &'a [u8],
    pos: usize,
    little: bool,
}

macro_rules! read_prim {
    ($(#[$doc:meta] $name:ident: $t:ty),* $(,)?) => {$(
        #[$doc]
        pub fn $name(&mut self, field: &'static str) -> Result<$t, CdrError> {
            const N: usize = std::mem::size_of::<$t>();
            let mut b = [0u8; N];
            b.copy_from_slice(self.take(N, N, field)?);
            Ok(if self.little { <$t>::from_le_bytes(b) } else { <$t>::from_be_bytes(b) })
        }
    )*};
}

impl<'a> CdrReader<'a> {
    /// Starts after the encapsulation header.
    pub fn new(payload: &'a [u8]) -> Result<CdrReader<'a>, CdrError> {
        if payload.len() < 4 {
            return Err(CdrError::Truncated {
                field: "encapsulation header",
                len: payload.len(),
                needed: 4 - payload.len(),
            });
        }
        let kind = u16::from_be_bytes([payload[0], payload[1]]);
        let little = match kind {
            0x0000 => false,
            0x0001 => true,
            other => return Err(CdrError::Encapsulation(other)),
        };
        Ok(CdrReader {
            data: &payload[4..],
            pos: 0,
            little,
        })
    }

    /// Whether the payload is little-endian.
    pub fn is_little_endian(&self) -> bool {
        self.little
    }

    fn take(&mut self, n: usize, align: usize, field: &'static str) -> Result<&'a [u8], CdrError> {
        let start = self.pos.div_ceil(align) * align;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(CdrError::Truncated {
                field,
                len: self.data.len() + 4,
                needed: start.saturating_add(n).saturating_sub(self.data.len()),
            })?;
        self.pos = end;
        Ok(&self.data[start..end])
    }

    /// A `uint8`.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, CdrError> {
        Ok(self.take(1, 1, field)?[0])
    }

    read_prim! {
        /// A `uint16`.
        u16: u16,
        /// A `uint32`.
        u32: u32,
        /// An `int32`.
        i32: i32,
        /// A `uint64`.
        u64: u64,
        /// An `int64`.
        i64: i64,
        /// A `float64`.
        f64: f64,
    }

    /// A `string` (length including the NUL, bytes, NUL).
    pub fn string(&mut self, field: &'static str) -> Result<&'a str, CdrError> {
        let n = self.u32(field)? as usize;
        if n == 0 {
            return Ok("");
        }
        let bytes = self.take(n, 1, field)?;
        let (last, body) = bytes.split_last().ok_or(CdrError::BadString(field))?;
        if *last != 0 {
            return Err(CdrError::BadString(field));
        }
        std::str::from_utf8(body).map_err(|_| CdrError::BadString(field))
    }

    /// A `uint8[]` sequence.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], CdrError> {
        let n = self.u32(field)? as usize;
        self.take(n, 1, field)
    }

    /// A fixed `float64[N]` array.
    pub fn f64_array<const N: usize>(&mut self, field: &'static str) -> Result<[f64; N], CdrError> {
        let mut out = [0.0; N];
        for v in &mut out {
            *v = self.f64(field)?;
        }
        Ok(out)
    }
}

/// Writes a little-endian CDR payload, header included.
pub struct CdrWriter {
    buf: Vec<u8>,
}

impl Default for CdrWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CdrWriter {
    /// An empty payload: just the encapsulation header (plain CDR, little-endian).
    pub fn new() -> CdrWriter {
        CdrWriter::with_capacity(64)
    }

    /// As [`CdrWriter::new`], reserving room for `bytes` of body.
    pub fn with_capacity(bytes: usize) -> CdrWriter {
        let mut buf = Vec::with_capacity(bytes + 4);
        buf.extend_from_slice(&[0, 1, 0, 0]);
        CdrWriter { buf }
    }

    fn align(&mut self, to: usize) {
        let body = self.buf.len() - 4;
        let pad = body.next_multiple_of(to) - body;
        self.buf.resize(self.buf.len() + pad, 0);
    }

    /// A `uint8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `uint32`.
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An `int32`.
    pub fn i32(&mut self, v: i32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `float64`.
    pub fn f64(&mut self, v: f64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A fixed `float64[N]` array.
    pub fn f64s(&mut self, v: &[f64]) {
        for &x in v {
            self.f64(x);
        }
    }

    fn len32(field: &'static str, len: usize) -> Result<u32, CdrError> {
        u32::try_from(len).map_err(|_| CdrError::TooLong { field, len })
    }

    /// A `string`; a NUL inside it would end it early for every reader, so it is refused.
    pub fn string(&mut self, field: &'static str, s: &str) -> Result<(), CdrError> {
        if s.as_bytes().contains(&0) {
            return Err(CdrError::Value {
                field,
                what: "a string with a NUL byte inside cannot be sent as a ROS string".into(),
            });
        }
        self.u32(Self::len32(field, s.len() + 1)?);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    /// A `uint8[]` sequence.
    pub fn bytes(&mut self, field: &'static str, b: &[u8]) -> Result<(), CdrError> {
        self.u32(Self::len32(field, b.len())?);
        self.buf.extend_from_slice(b);
        Ok(())
    }

    /// The payload.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_aligns_from_the_body_and_reader_reads_it_back() {
        let mut w = CdrWriter::new();
        w.u8(7);
        w.f64(1.5);
        w.string("f", "ab").expect("string");
        w.u32(9);
        w.bytes("b", &[1, 2, 3]).expect("bytes");
        w.i32(-4);
        let p = w.finish();
        // header | 07 pad×7 | f64 | len 3 "ab\0" | pad 1 | u32 | len 3 + bytes | pad 1 | i32
        assert_eq!(&p[..4], &[0, 1, 0, 0]);
        assert_eq!(p.len(), 4 + 8 + 8 + 7 + 1 + 4 + 7 + 1 + 4);
        let mut r = CdrReader::new(&p).expect("header");
        assert_eq!(r.u8("a"), Ok(7));
        assert_eq!(r.f64("d"), Ok(1.5));
        assert_eq!(r.string("f"), Ok("ab"));
        assert_eq!(r.u32("u"), Ok(9));
        assert_eq!(r.bytes("b"), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.i32("i"), Ok(-4));
        assert!(r.u8("past the end").is_err());
    }

    #[test]
    fn big_endian_payloads_read_too() {
        let mut p = vec![0, 0, 0, 0];
        p.extend(0x0102u16.to_be_bytes());
        p.extend([0; 6]); // int64 aligns to 8
        p.extend((-3i64).to_be_bytes());
        p.extend(2.25f64.to_be_bytes());
        let mut r = CdrReader::new(&p).expect("header");
        assert!(!r.is_little_endian());
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.i64("b"), Ok(-3));
        assert_eq!(r.f64("c"), Ok(2.25));
    }

    #[test]
    fn strings_with_nul_and_lengths_past_the_end_are_errors() {
        let mut w = CdrWriter::new();
        assert!(matches!(
            w.string("frame_id", "a\0b"),
            Err(CdrError::Value {
                field: "frame_id",
                ..
            })
        ));
        let mut p = vec![0, 1, 0, 0];
        p.extend(u32::MAX.to_le_bytes());
        let e = CdrReader::new(&p).and_then(|mut r| r.bytes("data").map(|_| ()));
        assert!(
            matches!(e, Err(CdrError::Truncated { field: "data", .. })),
            "{e:?}"
        );
    }
}
