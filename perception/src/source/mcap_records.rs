//! MCAP records read with every length checked before anything is allocated for it.
//!
//! Two findings of the `mcap` fuzz target shape this module. The mcap crate (0.26) parses a
//! record body through binrw, which reserves a length-prefixed string's or byte array's claimed
//! size (up to 4 GiB, or 2^64 for attachments) before reading it: a 7 KB file could make us
//! allocate gigabytes. And its sans-io reader subtracts an inner record's claimed length from
//! an uncompressed chunk's remaining bytes unchecked (an overflow panic with overflow checks,
//! a wrapped count and records read from outside the chunk without them).
//!
//! So here the crate's sans-io reader only splits the file into top-level records (each at
//! most [`MAX_RECORD_BYTES`]); chunks are decompressed here (bounded by the same size, checked
//! against the size the chunk header states) and their records split here; and every record's
//! length prefixes are walked against the record's own size ([`check_fields`]) before the crate
//! parses it. The summary section is checked the same way before `mcap::Summary::read` sees it.

use super::mcap::BagMessage;
use mcap::read::ChannelAccumulator;
use mcap::records::{Record, op};
use mcap::sans_io::linear_reader::{LinearReadEvent, LinearReader, LinearReaderOptions};

/// Longest record, compressed chunk or decompressed chunk read. A raw 8K rgb8 frame is 100 MB;
/// rosbag2 writes chunks of under a megabyte unless one message is larger.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// One field of a record body, for the length walk.
#[derive(Clone, Copy)]
enum Field {
    /// So many bytes.
    Fixed(usize),
    /// u32 byte length, then the bytes (a string).
    Str,
    /// u32 byte length, then the bytes.
    Bytes32,
    /// u64 byte length, then the bytes.
    Bytes64,
    /// u32 byte length of a map of strings to strings, each entry two `Str`.
    StrMap,
    /// u32 byte length of an array or map of fixed-size entries.
    Array32,
    /// The rest of the record.
    Rest,
}

/// The layout of each record kind (the MCAP specification's field tables); `None` for opcodes
/// the reader skips.
fn layout(opcode: u8) -> Option<&'static [Field]> {
    use Field::*;
    Some(match opcode {
        op::HEADER => &[Str, Str],
        op::FOOTER => &[Fixed(8 + 8 + 4)],
        op::SCHEMA => &[Fixed(2), Str, Str, Bytes32],
        op::CHANNEL => &[Fixed(2 + 2), Str, Str, StrMap],
        op::MESSAGE => &[Fixed(2 + 4 + 8 + 8), Rest],
        op::CHUNK => &[Fixed(8 + 8 + 8 + 4), Str, Bytes64],
        op::MESSAGE_INDEX => &[Fixed(2), Array32],
        op::CHUNK_INDEX => &[Fixed(8 * 4), Array32, Fixed(8), Str, Fixed(8 + 8)],
        op::ATTACHMENT => &[Fixed(8 + 8), Str, Str, Bytes64, Fixed(4)],
        op::ATTACHMENT_INDEX => &[Fixed(8 * 5), Str, Str],
        op::STATISTICS => &[Fixed(8 + 2 + 4 * 4 + 8 + 8), Array32],
        op::METADATA => &[Str, StrMap],
        op::METADATA_INDEX => &[Fixed(8 + 8), Str],
        op::SUMMARY_OFFSET => &[Fixed(1 + 8 + 8)],
        op::DATA_END => &[Fixed(4)],
        _ => return None,
    })
}

fn record_name(opcode: u8) -> String {
    let known = match opcode {
        op::HEADER => "header",
        op::FOOTER => "footer",
        op::SCHEMA => "schema",
        op::CHANNEL => "channel",
        op::MESSAGE => "message",
        op::CHUNK => "chunk",
        op::MESSAGE_INDEX => "message index",
        op::CHUNK_INDEX => "chunk index",
        op::ATTACHMENT => "attachment",
        op::ATTACHMENT_INDEX => "attachment index",
        op::STATISTICS => "statistics",
        op::METADATA => "metadata",
        op::METADATA_INDEX => "metadata index",
        op::SUMMARY_OFFSET => "summary offset",
        op::DATA_END => "data end",
        _ => "unknown",
    };
    format!("{known} record (opcode 0x{opcode:02x})")
}

/// Takes a `width`-byte little-endian length at `*at` and checks that many bytes follow.
fn length(body: &[u8], at: &mut usize, width: usize, what: &str) -> Result<usize, String> {
    let left = body.len() - *at;
    if left < width {
        return Err(format!(
            "{what}: its {width}-byte length is cut off ({left} bytes left)"
        ));
    }
    let mut raw = [0u8; 8];
    raw[..width].copy_from_slice(&body[*at..*at + width]);
    *at += width;
    let n = u64::from_le_bytes(raw);
    let left = (body.len() - *at) as u64;
    if n > left {
        return Err(format!(
            "{what} claims {n} bytes, only {left} are left in the record"
        ));
    }
    Ok(n as usize)
}

/// Checks that every length prefix of a record body fits inside the body, so parsing it
/// allocates at most the body's size.
pub fn check_fields(opcode: u8, body: &[u8]) -> Result<(), String> {
    let Some(fields) = layout(opcode) else {
        return Ok(());
    };
    let name = record_name(opcode);
    let mut at = 0usize;
    for (i, f) in fields.iter().enumerate() {
        let what = format!("{name}, field {}", i + 1);
        match *f {
            Field::Fixed(n) => {
                if body.len() - at < n {
                    return Err(format!(
                        "{what}: needs {n} bytes, only {} are left in the record",
                        body.len() - at
                    ));
                }
                at += n;
            }
            Field::Str | Field::Bytes32 | Field::Array32 => at += length(body, &mut at, 4, &what)?,
            Field::Bytes64 => at += length(body, &mut at, 8, &what)?,
            Field::StrMap => {
                let n = length(body, &mut at, 4, &what)?;
                let map = &body[at..at + n];
                let mut m = 0usize;
                while m < map.len() {
                    m += length(map, &mut m, 4, &format!("{what} (a map key)"))?;
                    m += length(map, &mut m, 4, &format!("{what} (a map value)"))?;
                }
                at += n;
            }
            Field::Rest => at = body.len(),
        }
    }
    Ok(())
}

/// Every record of an MCAP file in order, chunks decompressed, each length-checked and then
/// parsed by the mcap crate.
pub struct Records<'a> {
    reader: LinearReader,
    buf: &'a [u8],
    /// The decompressed records of the chunk being read, and how far into them we are.
    chunk: Option<(Vec<u8>, usize)>,
}

/// Parses a length-checked record into an owned one.
fn parse(opcode: u8, body: &[u8]) -> Result<Record<'static>, String> {
    check_fields(opcode, body)?;
    mcap::parse_record(opcode, body)
        .map(Record::into_owned)
        .map_err(|e| format!("{}: {e}", record_name(opcode)))
}

/// A chunk's records, decompressed: exactly `header.uncompressed_size` bytes (at most
/// [`MAX_RECORD_BYTES`]).
fn decompress(header: &mcap::records::ChunkHeader, data: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let size = header.uncompressed_size;
    if size > MAX_RECORD_BYTES as u64 {
        return Err(format!(
            "chunk says it holds {size} bytes uncompressed; at most {MAX_RECORD_BYTES} are read"
        ));
    }
    let size = size as usize;
    let out = match header.compression.as_str() {
        "" => data.to_vec(),
        "zstd" => zstd::bulk::decompress(data, size)
            .map_err(|e| format!("chunk does not decompress (zstd): {e}"))?,
        "lz4" => {
            let mut out = Vec::with_capacity(size.min(1 << 20));
            lz4::Decoder::new(data)
                .and_then(|d| d.take(size as u64 + 1).read_to_end(&mut out))
                .map_err(|e| format!("chunk does not decompress (lz4): {e}"))?;
            out
        }
        other => {
            return Err(format!(
                "chunk compression {other:?} is not zstd, lz4 or none"
            ));
        }
    };
    if out.len() != size {
        return Err(format!(
            "chunk holds {} bytes uncompressed, its header says {size}",
            out.len()
        ));
    }
    Ok(out)
}

/// The record at `*at` of a chunk's records, length-checked and parsed; `None` at the end.
fn next_in_chunk(records: &[u8], at: &mut usize) -> Option<Result<Record<'static>, String>> {
    let rest = &records[*at..];
    if rest.is_empty() {
        return None;
    }
    if rest.len() < 9 {
        return Some(Err(format!(
            "a record inside a chunk is cut off ({} bytes left)",
            rest.len()
        )));
    }
    let opcode = rest[0];
    let mut len = [0u8; 8];
    len.copy_from_slice(&rest[1..9]);
    let len = u64::from_le_bytes(len);
    if len > (rest.len() - 9) as u64 {
        *at = records.len();
        return Some(Err(format!(
            "{} inside a chunk claims {len} bytes, only {} are left in the chunk",
            record_name(opcode),
            rest.len() - 9
        )));
    }
    let len = len as usize;
    *at += 9 + len;
    Some(parse(opcode, &rest[9..9 + len]))
}

impl<'a> Records<'a> {
    /// Reads `buf`, a whole MCAP file.
    pub fn new(buf: &'a [u8]) -> Records<'a> {
        Records {
            reader: LinearReader::new_with_options(
                LinearReaderOptions::default()
                    .with_record_length_limit(MAX_RECORD_BYTES)
                    .with_emit_chunks(true),
            ),
            buf,
            chunk: None,
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record<'static>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((records, at)) = &mut self.chunk {
                match next_in_chunk(records, at) {
                    Some(r) => return Some(r),
                    None => self.chunk = None,
                }
            }
            match self.reader.next_event()? {
                Err(e) => return Some(Err(e.to_string())),
                Ok(LinearReadEvent::ReadRequest(need)) => {
                    let n = need.min(self.buf.len());
                    self.reader.insert(n).copy_from_slice(&self.buf[..n]);
                    self.reader.notify_read(n);
                    self.buf = &self.buf[n..];
                }
                Ok(LinearReadEvent::Record { data, opcode }) => match parse(opcode, data) {
                    Ok(Record::Chunk { header, data }) => match decompress(&header, &data) {
                        Ok(records) => self.chunk = Some((records, 0)),
                        Err(e) => return Some(Err(e)),
                    },
                    other => return Some(other),
                },
            }
        }
    }
}

/// Every message of an MCAP file in order, linked to its channel and schema.
pub struct Messages<'a> {
    records: Records<'a>,
    channels: ChannelAccumulator<'static>,
    count: u64,
}

impl<'a> Messages<'a> {
    /// Reads `buf`, a whole MCAP file.
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages {
            records: Records::new(buf),
            channels: ChannelAccumulator::default(),
            count: 0,
        }
    }
}

impl Iterator for Messages<'_> {
    type Item = Result<BagMessage, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let record = match self.records.next()? {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            let linked = match record {
                Record::Schema { header, data } => self.channels.add_schema(header, data),
                Record::Channel(c) => self.channels.add_channel(c),
                Record::Message { header, data } => {
                    let Some(ch) = self.channels.get(header.channel_id) else {
                        return Some(Err(format!(
                            "message {} names channel {}, which no channel record defined",
                            self.count, header.channel_id
                        )));
                    };
                    self.count += 1;
                    return Some(Ok(BagMessage {
                        topic: ch.topic.clone(),
                        schema: ch
                            .schema
                            .as_ref()
                            .map(|s| s.name.clone())
                            .unwrap_or_default(),
                        encoding: ch.message_encoding.clone(),
                        log_time_ns: header.log_time,
                        data: data.into_owned(),
                    }));
                }
                _ => Ok(()),
            };
            if let Err(e) = linked {
                return Some(Err(e.to_string()));
            }
        }
    }
}

/// Checks the summary section (the records between the footer's `summary_start` and the
/// footer) the same way, so `mcap::Summary::read` parses only length-checked records. A file
/// without a footer or summary passes: the summary reader reports that itself.
pub fn check_summary(buf: &[u8]) -> Result<(), String> {
    const FOOTER_RECORD: usize = 1 + 8 + 8 + 8 + 4;
    let magic = mcap::MAGIC.len();
    if buf.len() < magic * 2 + FOOTER_RECORD {
        return Ok(());
    }
    let footer_at = buf.len() - magic - FOOTER_RECORD;
    let footer = &buf[footer_at..buf.len() - magic];
    if footer[0] != op::FOOTER {
        return Ok(());
    }
    let mut start = [0u8; 8];
    start.copy_from_slice(&footer[9..17]);
    let start = u64::from_le_bytes(start);
    if start == 0 {
        return Ok(());
    }
    let Some(mut at) = usize::try_from(start).ok().filter(|&s| s <= footer_at) else {
        return Err(format!(
            "the footer's summary start {start} is past the footer at byte {footer_at}"
        ));
    };
    while at < footer_at {
        let section = &buf[at..footer_at];
        if section.len() < 9 {
            return Err(format!("summary record at byte {at} is cut off"));
        }
        let opcode = section[0];
        let mut len = [0u8; 8];
        len.copy_from_slice(&section[1..9]);
        let len = u64::from_le_bytes(len);
        if len > (section.len() - 9) as u64 {
            return Err(format!(
                "{} at byte {at} claims {len} bytes, only {} are left before the footer",
                record_name(opcode),
                section.len() - 9
            ));
        }
        let len = len as usize;
        check_fields(opcode, &section[9..9 + len]).map_err(|e| format!("{e} (at byte {at})"))?;
        at += 9 + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    #[test]
    fn lengths_are_walked_against_the_record() {
        // A schema: id, name, encoding, data.
        let mut body = 1u16.to_le_bytes().to_vec();
        body.extend(string(b"sensor_msgs/msg/Image"));
        body.extend(string(b"ros2msg"));
        body.extend(string(b"uint32 height"));
        assert_eq!(check_fields(op::SCHEMA, &body), Ok(()));
        // The name claims 1.9 GB (the fuzzer's finding).
        let mut bad = 1u16.to_le_bytes().to_vec();
        bad.extend(1_912_602_624u32.to_le_bytes());
        bad.extend(b"sensor");
        let e = check_fields(op::SCHEMA, &bad).unwrap_err();
        assert!(
            e.contains("schema record") && e.contains("claims 1912602624 bytes"),
            "{e}"
        );
        // Cut in the middle of the fixed part.
        let e = check_fields(op::MESSAGE, &[0; 5]).unwrap_err();
        assert!(e.contains("needs 22 bytes"), "{e}");
        // A channel whose metadata map holds a value longer than the map.
        let mut ch = [1u8, 0, 1, 0].to_vec();
        ch.extend(string(b"/camera"));
        ch.extend(string(b"cdr"));
        let mut map = string(b"k");
        map.extend(100u32.to_le_bytes());
        ch.extend(string(&map));
        let e = check_fields(op::CHANNEL, &ch).unwrap_err();
        assert!(e.contains("map value") && e.contains("claims 100"), "{e}");
        // An attachment's u64 data length.
        let mut att = vec![0u8; 16];
        att.extend(string(b"a"));
        att.extend(string(b"b"));
        att.extend(u64::MAX.to_le_bytes());
        assert!(check_fields(op::ATTACHMENT, &att).is_err());
        // Unknown opcodes are left to the reader (which skips them).
        assert_eq!(check_fields(0x80, &[1, 2, 3]), Ok(()));
    }

    #[test]
    fn chunk_records_stay_inside_their_chunk() {
        // A message record inside an uncompressed chunk that claims more than the chunk holds.
        let mut records = vec![op::MESSAGE];
        records.extend(1000u64.to_le_bytes());
        records.extend([0u8; 30]);
        let mut at = 0;
        let e = next_in_chunk(&records, &mut at).unwrap().unwrap_err();
        assert!(e.contains("claims 1000 bytes, only 30"), "{e}");
        assert!(next_in_chunk(&records, &mut at).is_none());
        // A stated size that is not what decompresses, and one past the bound.
        let header = |size: u64, compression: &str| mcap::records::ChunkHeader {
            message_start_time: 0,
            message_end_time: 0,
            uncompressed_size: size,
            uncompressed_crc: 0,
            compression: compression.into(),
            compressed_size: 0,
        };
        assert!(
            decompress(&header(5, ""), b"abc")
                .unwrap_err()
                .contains("says 5")
        );
        assert!(
            decompress(&header(1 << 40, "zstd"), b"")
                .unwrap_err()
                .contains("at most")
        );
        assert!(
            decompress(&header(3, "brotli"), b"abc")
                .unwrap_err()
                .contains("brotli")
        );
        let z = zstd::bulk::compress(b"abcabc", 3).unwrap();
        assert_eq!(decompress(&header(6, "zstd"), &z).unwrap(), b"abcabc");
        assert!(decompress(&header(5, "zstd"), &z).is_err());
    }
}
