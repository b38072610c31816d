//! TensorFlow's table files (LevelDB's sorted-table format without filter
//! blocks), the container of V1 checkpoints and of V2 checkpoint indexes:
//! data blocks of prefix-compressed key/value entries, an index block that
//! points at them, and a 48-byte footer. Every block is checked against its
//! CRC-32C; checkpoints are written uncompressed, so a compressed block is
//! refused.

use super::ImportError;

const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER: usize = 48;
/// A block's trailer: the compression byte and the masked CRC-32C.
const TRAILER: usize = 5;

/// CRC-32C (Castagnoli), as TensorFlow's `crc32c::Value`.
pub const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// TensorFlow's masking of a stored CRC.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn damaged(why: impl Into<String>) -> ImportError {
    ImportError::Damaged(why.into())
}

/// A LEB128 varint at `*at`, moved past it.
fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, ImportError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or_else(|| damaged("a table entry is cut short"))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(damaged("a table varint is too long"))
}

/// A block's place in the file: offset and size (without its trailer).
fn handle(bytes: &[u8], at: &mut usize) -> Result<(usize, usize), ImportError> {
    let offset = usize::try_from(varint(bytes, at)?).map_err(|_| damaged("a block offset is out of range"))?;
    let size = usize::try_from(varint(bytes, at)?).map_err(|_| damaged("a block size is out of range"))?;
    Ok((offset, size))
}

/// The checked contents of the block at `(offset, size)`.
fn block(file: &[u8], (offset, size): (usize, usize)) -> Result<&[u8], ImportError> {
    let end = offset.checked_add(size).and_then(|e| e.checked_add(TRAILER)).filter(|&e| e <= file.len());
    let end = end.ok_or_else(|| damaged("a block lies outside the file (cut short?)"))?;
    let (contents, trailer) = (&file[offset..offset + size], &file[offset + size..end]);
    let stored = u32::from_le_bytes(trailer[1..5].try_into().expect("4 bytes"));
    let mut crc = CRC32C.digest();
    crc.update(contents);
    crc.update(&trailer[..1]);
    if mask(crc.finalize()) != stored {
        return Err(damaged(format!("the table block at byte {offset} fails its checksum")));
    }
    match trailer[0] {
        0 => Ok(contents),
        kind => Err(ImportError::Unsupported(format!("the table block at byte {offset} is compressed (type {kind}); checkpoints are written uncompressed"))),
    }
}

/// The entries of one block, keys made whole.
fn entries(block: &[u8]) -> Result<Vec<(Vec<u8>, &[u8])>, ImportError> {
    let count_at = block.len().checked_sub(4).ok_or_else(|| damaged("a table block is too short"))?;
    let restarts = u32::from_le_bytes(block[count_at..].try_into().expect("4 bytes")) as usize;
    let end = restarts.checked_mul(4).and_then(|r| count_at.checked_sub(r)).ok_or_else(|| damaged("a table block's restart points do not fit it"))?;
    let (mut at, mut key, mut found) = (0usize, Vec::new(), Vec::new());
    while at < end {
        let shared = varint(block, &mut at)? as usize;
        let unshared = varint(block, &mut at)? as usize;
        let value_len = varint(block, &mut at)? as usize;
        if shared > key.len() {
            return Err(damaged("a table key shares more than the key before it"));
        }
        let key_end = at.checked_add(unshared).filter(|&e| e <= end).ok_or_else(|| damaged("a table key runs past its block"))?;
        let value_end = key_end.checked_add(value_len).filter(|&e| e <= end).ok_or_else(|| damaged("a table value runs past its block"))?;
        key.truncate(shared);
        key.extend_from_slice(&block[at..key_end]);
        found.push((key.clone(), &block[key_end..value_end]));
        at = value_end;
    }
    Ok(found)
}

/// Every key and value of a table file, in key order.
pub fn read(file: &[u8]) -> Result<Vec<(Vec<u8>, &[u8])>, ImportError> {
    let footer_at = file.len().checked_sub(FOOTER).ok_or_else(|| damaged("too short to be a TensorFlow table"))?;
    let footer = &file[footer_at..];
    if u64::from_le_bytes(footer[40..48].try_into().expect("8 bytes")) != MAGIC {
        return Err(damaged("not a TensorFlow table (no table magic number at its end)"));
    }
    let mut at = 0;
    let _metaindex = handle(footer, &mut at)?;
    let index = handle(footer, &mut at)?;
    let mut all = Vec::new();
    for (_, value) in entries(block(file, index)?)? {
        let mut at = 0;
        all.extend(entries(block(file, handle(value, &mut at)?)?)?);
    }
    Ok(all)
}
