//! Configuration of the real peers the benches and tests start: nginx with its RTMP module,
//! recording every stream it receives (optionally behind nginx's own TLS `stream` proxy).
//!
//! One writer of the config, so that the squeeze bench and the media tests run the same ingest.

use std::fmt::Write as _;
use std::path::Path;

/// An nginx-rtmp ingest to write a config for.
#[derive(Debug, Clone)]
pub struct NginxRtmp<'a> {
    /// nginx's prefix: pid file and error log go here.
    pub dir: &'a Path,
    /// Where the RTMP listener binds, `host:port`.
    pub listen: &'a str,
    /// Where each received stream is recorded (`record_unique`: one FLV per session).
    pub record_path: &'a Path,
    /// Run the workers as root (needed when the tests run as root and write to root's temp dirs).
    pub user_root: bool,
    /// A TLS terminator in front of the RTMP listener: (listen `host:port`, cert, key).
    pub tls: Option<(&'a str, &'a Path, &'a Path)>,
}

impl NginxRtmp<'_> {
    /// The whole `nginx.conf`: one worker, no daemon, application `live` recording all.
    pub fn config(&self) -> String {
        let mut conf = String::from("load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n");
        if self.tls.is_some() {
            conf.push_str("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n");
        }
        if self.user_root {
            conf.push_str("user root;\n");
        }
        let _ = write!(
            conf,
            "daemon off;\n\
             master_process on;\n\
             worker_processes 1;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{\n\
               server {{\n\
                 listen {listen};\n\
                 chunk_size 4096;\n\
                 application live {{\n\
                   live on;\n\
                   record all;\n\
                   record_path {rec};\n\
                   record_unique on;\n\
                 }}\n\
               }}\n\
             }}\n",
            dir = self.dir.display(),
            listen = self.listen,
            rec = self.record_path.display(),
        );
        if let Some((listen, cert, key)) = self.tls {
            let _ = write!(
                conf,
                "stream {{\n\
                   server {{\n\
                     listen {listen} ssl;\n\
                     ssl_certificate {cert};\n\
                     ssl_certificate_key {key};\n\
                     proxy_pass {upstream};\n\
                   }}\n\
                 }}\n",
                cert = cert.display(),
                key = key.display(),
                upstream = self.listen,
            );
        }
        conf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_proxy_forwards_to_the_rtmp_listener() {
        let dir = Path::new("/tmp/x");
        let conf = NginxRtmp {
            dir,
            listen: "127.0.0.1:1935",
            record_path: &dir.join("rec"),
            user_root: false,
            tls: Some(("127.0.0.1:1936", Path::new("/c.pem"), Path::new("/k.pem"))),
        }
        .config();
        assert!(conf.contains("ngx_stream_module"));
        assert!(conf.contains("listen 127.0.0.1:1936 ssl;"));
        assert!(conf.contains("proxy_pass 127.0.0.1:1935;"));
        assert!(conf.contains("record_path /tmp/x/rec;"));
        assert!(!conf.contains("user root"));
    }
}
