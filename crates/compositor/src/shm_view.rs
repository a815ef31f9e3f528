//! The one place that turns a client's shared memory into a `&[u8]`.

use smithay::reexports::wayland_server::protocol::{wl_buffer::WlBuffer, wl_shm};
use smithay::wayland::shm::{with_buffer_contents, BufferAccessError};

use crate::{ShmFormat, ShmFrame};

/// Why a buffer could not be read.
pub(crate) enum ReadError {
    /// The client shrank its pool under the buffer (SIGBUS caught by smithay's guard, which has
    /// already posted `wl_shm.invalid_fd` to the client).
    BadMap,
    /// The buffer is no longer an shm buffer smithay knows (destroyed, client gone).
    Gone,
    /// The buffer's geometry does not fit its pool or its format is not one we read.
    Invalid,
}

/// Calls `f` with the pixels of `buffer`, in place, on the calling thread.
pub(crate) fn read<R>(
    buffer: &WlBuffer,
    f: impl FnOnce(&ShmFrame<'_>) -> R,
) -> Result<R, ReadError> {
    let res = with_buffer_contents(buffer, |ptr, pool_len, data| {
        let format = match data.format {
            wl_shm::Format::Argb8888 => ShmFormat::Argb8888,
            wl_shm::Format::Xrgb8888 => ShmFormat::Xrgb8888,
            _ => return None,
        };
        let (Ok(offset), Ok(width), Ok(height), Ok(stride)) = (
            usize::try_from(data.offset),
            u32::try_from(data.width),
            u32::try_from(data.height),
            usize::try_from(data.stride),
        ) else {
            return None;
        };
        // smithay checked this against the pool's size when the buffer was created; checked
        // again because the slice below must never reach past the mapping.
        let len = stride.checked_mul(height as usize)?;
        if offset.checked_add(len)? > pool_len || stride < width as usize * 4 {
            return None;
        }
        // SAFETY: `ptr..ptr + pool_len` is smithay's mapping of the client's pool, and it stays
        // mapped for the whole closure because `with_buffer_contents` holds the pool's read
        // lock (a resize remaps only under the write lock); `offset + len <= pool_len` was
        // checked above, so the slice lies inside the mapping. The client may write these bytes
        // concurrently: we only ever read them as plain `u8`s, where any value is valid, and a
        // torn frame is the client's own doing. If the client shrinks the memfd underneath,
        // reading faults with SIGBUS, which smithay's thread-local guard (set up for this
        // thread by `with_buffer_contents`) catches by mapping zeroed pages over the pool and
        // reporting `BadMap` afterwards, so the read neither crashes nor sees unmapped memory.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.add(offset), len) };
        Some(f(&ShmFrame {
            data: bytes,
            width,
            height,
            stride,
            format,
        }))
    });
    match res {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(ReadError::Invalid),
        Err(BufferAccessError::BadMap) => Err(ReadError::BadMap),
        Err(_) => Err(ReadError::Gone),
    }
}
