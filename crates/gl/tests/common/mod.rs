//! A real GL context for the tests and the benchmark: Mesa (llvmpipe on a machine without a
//! GPU) through surfaceless EGL, an OpenGL ES 3 context with no surface, made current on the
//! calling thread. Plus the few drawing calls the tests need to put known pixels in an FBO.
#![allow(dead_code, unreachable_pub)]

use glow::HasContext;
use khronos_egl as egl;

/// `EGL_PLATFORM_SURFACELESS_MESA` (EGL_MESA_platform_surfaceless).
const PLATFORM_SURFACELESS_MESA: egl::Enum = 0x31DD;

/// A GL context current on the thread that made it, with the glow functions loaded.
pub struct Gl {
    pub gl: glow::Context,
    egl: egl::Instance<egl::Static>,
    display: egl::Display,
    context: egl::Context,
}

impl Gl {
    /// Creates the context and makes it current on this thread; panics with the reason if the
    /// machine cannot give one (no Mesa EGL, no surfaceless platform, no ES 3).
    pub fn new() -> Self {
        let egl = egl::Instance::new(egl::Static);
        // SAFETY: the surfaceless platform takes no native display; EGL_DEFAULT_DISPLAY (null)
        // is what the extension asks for, and the attribute list is terminated.
        let display = unsafe {
            egl.get_platform_display(
                PLATFORM_SURFACELESS_MESA,
                egl::DEFAULT_DISPLAY,
                &[egl::ATTRIB_NONE],
            )
        }
        .expect("EGL surfaceless display (needs Mesa's libegl-mesa0)");
        egl.initialize(display).expect("eglInitialize");
        let extensions = egl
            .query_string(Some(display), egl::EXTENSIONS)
            .expect("EGL extensions")
            .to_string_lossy()
            .into_owned();
        assert!(
            extensions.contains("EGL_KHR_surfaceless_context"),
            "EGL lacks EGL_KHR_surfaceless_context: {extensions}"
        );
        egl.bind_api(egl::OPENGL_ES_API).expect("eglBindAPI(ES)");
        let config = egl
            .choose_first_config(
                display,
                &[
                    egl::RENDERABLE_TYPE,
                    egl::OPENGL_ES3_BIT,
                    egl::SURFACE_TYPE,
                    egl::PBUFFER_BIT,
                    egl::NONE,
                ],
            )
            .expect("eglChooseConfig")
            .expect("an ES 3 config");
        let context = egl
            .create_context(
                display,
                config,
                None,
                &[egl::CONTEXT_MAJOR_VERSION, 3, egl::NONE],
            )
            .expect("ES 3 context");
        egl.make_current(display, None, None, Some(context))
            .expect("make the context current without a surface");
        // SAFETY: the context was just made current on this thread, and `Gl` (not Send) is
        // only used here; the loader returns EGL's entry points for that context's API.
        let gl = unsafe {
            glow::Context::from_loader_function(|name| {
                egl.get_proc_address(name)
                    .map_or(std::ptr::null(), |f| f as *const std::ffi::c_void)
            })
        };
        Self {
            gl,
            egl,
            display,
            context,
        }
    }

    /// The renderer string, to show which GL the numbers come from.
    pub fn renderer(&self) -> String {
        // SAFETY: the context is current on this thread (see `new`).
        unsafe {
            format!(
                "{} / {}",
                self.gl.get_parameter_string(glow::RENDERER),
                self.gl.get_parameter_string(glow::VERSION)
            )
        }
    }

    /// Creates an RGBA8 framebuffer of `width`x`height` and leaves it bound for drawing.
    pub fn framebuffer(&self, width: i32, height: i32) -> glow::Framebuffer {
        // SAFETY: the context is current; the names are created and used on it only.
        unsafe {
            let rb = self.gl.create_renderbuffer().expect("renderbuffer");
            self.gl.bind_renderbuffer(glow::RENDERBUFFER, Some(rb));
            self.gl
                .renderbuffer_storage(glow::RENDERBUFFER, glow::RGBA8, width, height);
            let fbo = self.gl.create_framebuffer().expect("framebuffer");
            self.gl.bind_framebuffer(glow::FRAMEBUFFER, Some(fbo));
            self.gl.framebuffer_renderbuffer(
                glow::FRAMEBUFFER,
                glow::COLOR_ATTACHMENT0,
                glow::RENDERBUFFER,
                Some(rb),
            );
            assert_eq!(
                self.gl.check_framebuffer_status(glow::FRAMEBUFFER),
                glow::FRAMEBUFFER_COMPLETE
            );
            self.gl.viewport(0, 0, width, height);
            fbo
        }
    }

    /// Clears the bound framebuffer to `bg`, then the rectangle (GL coordinates: `x`, `y` from
    /// the bottom-left, `w`x`h`) to `fg`.
    pub fn paint(&self, bg: [u8; 4], fg: [u8; 4], rect: (i32, i32, i32, i32)) {
        let f = |c: u8| f32::from(c) / 255.0;
        // SAFETY: the context is current; clears and scissor state only.
        unsafe {
            self.gl.disable(glow::SCISSOR_TEST);
            self.gl.clear_color(f(bg[0]), f(bg[1]), f(bg[2]), f(bg[3]));
            self.gl.clear(glow::COLOR_BUFFER_BIT);
            self.gl.enable(glow::SCISSOR_TEST);
            self.gl.scissor(rect.0, rect.1, rect.2, rect.3);
            self.gl.clear_color(f(fg[0]), f(fg[1]), f(fg[2]), f(fg[3]));
            self.gl.clear(glow::COLOR_BUFFER_BIT);
            self.gl.disable(glow::SCISSOR_TEST);
        }
    }

    /// The current binding of `what` (a `*_BINDING` enum), to check state is restored.
    pub fn binding(&self, what: u32) -> i32 {
        // SAFETY: the context is current; a state query.
        unsafe { self.gl.get_parameter_i32(what) }
    }

    /// Binds `fbo` for reading, as a game might, to check it is left alone.
    pub fn bind_read(&self, fbo: Option<glow::Framebuffer>) {
        // SAFETY: the context is current; `fbo` was created on it.
        unsafe { self.gl.bind_framebuffer(glow::READ_FRAMEBUFFER, fbo) }
    }

    /// Sets a pixel-pack parameter as a game might, to check it is left alone.
    pub fn pack(&self, parameter: u32, value: i32) {
        // SAFETY: the context is current; pixel-store state only.
        unsafe { self.gl.pixel_store_i32(parameter, value) }
    }

    /// Calls glFinish: only for tests that need every queued copy done.
    pub fn finish(&self) {
        // SAFETY: the context is current.
        unsafe { self.gl.finish() }
    }
}

impl Drop for Gl {
    fn drop(&mut self) {
        // The display is shared by every test thread in the process, so it is not terminated;
        // only this thread's context goes.
        let _ = self.egl.make_current(self.display, None, None, None);
        let _ = self.egl.destroy_context(self.display, self.context);
        let _ = self.egl.release_thread();
    }
}
