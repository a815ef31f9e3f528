//! The only place that calls into GL.
//!
//! Every `glow` entry point is an `unsafe fn` because GL itself cannot check that the context
//! is current on the calling thread or that the objects named belong to it. These wrappers keep
//! that contract in one place so the ring logic in `lib.rs` stays free of `unsafe`.
//!
//! The contract they rely on, documented on [`crate::Readback`]: the `glow::Context` handed in
//! is current on the calling thread (its creator vouched for that when it called the unsafe
//! `glow::Context::from_loader_function`), and the buffers and fences passed back in are the
//! ones these wrappers created on that same context.
#![allow(unsafe_code)]

use glow::HasContext;

/// The GL state `start` changes and puts back, so the game's own bindings survive a readback.
pub(crate) struct PackState {
    read_framebuffer: i32,
    pack_buffer: i32,
    alignment: i32,
    row_length: i32,
    skip_pixels: i32,
    skip_rows: i32,
}

/// Returns the oldest pending GL error, or `NO_ERROR`.
pub(crate) fn error(gl: &glow::Context) -> u32 {
    // SAFETY: the context is current (module contract); glGetError has no other precondition.
    unsafe { gl.get_error() }
}

/// Drains every pending GL error (GL keeps one flag per kind) and returns the first.
pub(crate) fn take_error(gl: &glow::Context) -> u32 {
    let first = error(gl);
    if first != glow::NO_ERROR {
        // Bounded: GL has a handful of error flags, each cleared by reading it.
        for _ in 0..8 {
            if error(gl) == glow::NO_ERROR {
                break;
            }
        }
    }
    first
}

/// Creates a pixel-pack buffer of `size` bytes for streaming reads.
pub(crate) fn create_pack_buffer(gl: &glow::Context, size: i32) -> Result<glow::Buffer, String> {
    // SAFETY: the context is current (module contract). The previous binding is restored so
    // the game's state is not disturbed; the new name is only used on this context.
    unsafe {
        let previous = gl.get_parameter_i32(glow::PIXEL_PACK_BUFFER_BINDING);
        let buffer = gl.create_buffer()?;
        gl.bind_buffer(glow::PIXEL_PACK_BUFFER, Some(buffer));
        gl.buffer_data_size(glow::PIXEL_PACK_BUFFER, size, glow::STREAM_READ);
        gl.bind_buffer(glow::PIXEL_PACK_BUFFER, buffer_name(previous));
        Ok(buffer)
    }
}

/// Deletes a buffer made by [`create_pack_buffer`].
pub(crate) fn delete_buffer(gl: &glow::Context, buffer: glow::Buffer) {
    // SAFETY: the context is current and `buffer` was created on it (module contract).
    unsafe { gl.delete_buffer(buffer) }
}

/// Deletes a fence made by [`read_into`].
pub(crate) fn delete_fence(gl: &glow::Context, fence: glow::Fence) {
    // SAFETY: the context is current and `fence` was created on it (module contract).
    unsafe { gl.delete_sync(fence) }
}

/// Saves the read-framebuffer and pack state that [`read_into`] changes.
pub(crate) fn save_pack_state(gl: &glow::Context) -> PackState {
    // SAFETY: the context is current (module contract); these are plain state queries.
    unsafe {
        PackState {
            read_framebuffer: gl.get_parameter_i32(glow::READ_FRAMEBUFFER_BINDING),
            pack_buffer: gl.get_parameter_i32(glow::PIXEL_PACK_BUFFER_BINDING),
            alignment: gl.get_parameter_i32(glow::PACK_ALIGNMENT),
            row_length: gl.get_parameter_i32(glow::PACK_ROW_LENGTH),
            skip_pixels: gl.get_parameter_i32(glow::PACK_SKIP_PIXELS),
            skip_rows: gl.get_parameter_i32(glow::PACK_SKIP_ROWS),
        }
    }
}

/// Puts back the state saved by [`save_pack_state`].
pub(crate) fn restore_pack_state(gl: &glow::Context, state: &PackState) {
    // SAFETY: the context is current (module contract); the names restored were bound on it
    // a moment ago, so they still exist unless the game deleted them, which GL tolerates.
    unsafe {
        gl.bind_framebuffer(
            glow::READ_FRAMEBUFFER,
            framebuffer_name(state.read_framebuffer),
        );
        gl.bind_buffer(glow::PIXEL_PACK_BUFFER, buffer_name(state.pack_buffer));
        gl.pixel_store_i32(glow::PACK_ALIGNMENT, state.alignment);
        gl.pixel_store_i32(glow::PACK_ROW_LENGTH, state.row_length);
        gl.pixel_store_i32(glow::PACK_SKIP_PIXELS, state.skip_pixels);
        gl.pixel_store_i32(glow::PACK_SKIP_ROWS, state.skip_rows);
    }
}

/// Queues a copy of `fbo`'s read buffer (RGBA8, `width`x`height` from the origin) into
/// `buffer`, then a fence after it, and flushes so the fence can signal without another GL
/// call from the game. Nothing here waits for the GPU.
pub(crate) fn read_into(
    gl: &glow::Context,
    fbo: Option<glow::Framebuffer>,
    buffer: glow::Buffer,
    width: i32,
    height: i32,
) -> Result<glow::Fence, String> {
    // SAFETY: the context is current and `buffer` belongs to it (module contract); `fbo` is
    // the caller's framebuffer on the same context. With a pack buffer bound, ReadPixels takes
    // an offset into it (0), and the buffer holds width*height*4 bytes with tight packing.
    unsafe {
        gl.bind_framebuffer(glow::READ_FRAMEBUFFER, fbo);
        gl.bind_buffer(glow::PIXEL_PACK_BUFFER, Some(buffer));
        gl.pixel_store_i32(glow::PACK_ALIGNMENT, 4);
        gl.pixel_store_i32(glow::PACK_ROW_LENGTH, 0);
        gl.pixel_store_i32(glow::PACK_SKIP_PIXELS, 0);
        gl.pixel_store_i32(glow::PACK_SKIP_ROWS, 0);
        gl.read_pixels(
            0,
            0,
            width,
            height,
            glow::RGBA,
            glow::UNSIGNED_BYTE,
            glow::PixelPackData::BufferOffset(0),
        );
        let fence = gl.fence_sync(glow::SYNC_GPU_COMMANDS_COMPLETE, 0)?;
        // Without a flush the fence may never reach the GPU when the game renders off-screen
        // and never swaps; glFlush only submits, it does not wait.
        gl.flush();
        Ok(fence)
    }
}

/// How a fence wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The fence has signalled: the copy is complete.
    Signalled,
    /// The timeout ran out first.
    Pending,
    /// GL reported `WAIT_FAILED` (e.g. an invalid fence or a lost context).
    Failed,
}

/// Waits up to `timeout_ns` (0: just looks) for `fence`.
pub(crate) fn wait_fence(gl: &glow::Context, fence: glow::Fence, timeout_ns: i32) -> Wait {
    // Flushing only matters when actually waiting: a 0 timeout must stay free of side effects.
    let flags = if timeout_ns > 0 {
        glow::SYNC_FLUSH_COMMANDS_BIT
    } else {
        0
    };
    // SAFETY: the context is current and `fence` was created on it (module contract).
    let status = unsafe { gl.client_wait_sync(fence, flags, timeout_ns) };
    match status {
        glow::ALREADY_SIGNALED | glow::CONDITION_SATISFIED => Wait::Signalled,
        glow::TIMEOUT_EXPIRED => Wait::Pending,
        _ => Wait::Failed,
    }
}

/// Maps the first `len` bytes of `buffer` for reading and hands them to `read`; unmaps after.
/// Returns `None` when GL refused the mapping (the caller then reads `glGetError`).
pub(crate) fn with_mapped(
    gl: &glow::Context,
    buffer: glow::Buffer,
    len: i32,
    read: impl FnOnce(&[u8]),
) -> Option<()> {
    let len_usize = usize::try_from(len).ok()?;
    // SAFETY: the context is current and `buffer` (created with at least `len` bytes) belongs
    // to it. A non-null pointer from MapBufferRange(READ) is valid for `len` readable bytes
    // until UnmapBuffer; the slice does not escape `read`, which returns before the unmap.
    // The previous pack binding is restored so the game's state is left as it was.
    unsafe {
        let previous = gl.get_parameter_i32(glow::PIXEL_PACK_BUFFER_BINDING);
        gl.bind_buffer(glow::PIXEL_PACK_BUFFER, Some(buffer));
        let ptr = gl.map_buffer_range(glow::PIXEL_PACK_BUFFER, 0, len, glow::MAP_READ_BIT);
        let result = if ptr.is_null() {
            None
        } else {
            let bytes = std::slice::from_raw_parts(ptr.cast_const(), len_usize);
            read(bytes);
            gl.unmap_buffer(glow::PIXEL_PACK_BUFFER);
            Some(())
        };
        gl.bind_buffer(glow::PIXEL_PACK_BUFFER, buffer_name(previous));
        result
    }
}

/// The buffer object for a name returned by a binding query (0: none).
fn buffer_name(name: i32) -> Option<glow::Buffer> {
    u32::try_from(name)
        .ok()
        .and_then(std::num::NonZeroU32::new)
        .map(glow::NativeBuffer)
}

/// The framebuffer object for a name returned by a binding query (0: the default one).
fn framebuffer_name(name: i32) -> Option<glow::Framebuffer> {
    u32::try_from(name)
        .ok()
        .and_then(std::num::NonZeroU32::new)
        .map(glow::NativeFramebuffer)
}
