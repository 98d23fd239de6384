# Varnish in front of warmcache's api, purged by the warmer (README, "HTTP caching").
#
# The api labels every cached answer with its surrogate keys (Surrogate-Key: the job's, and the
# value's); Varnish keeps it for its s-maxage, and the warmer sends PURGE with the keys of the
# values it changed in the xkey-purge header, which drops exactly the answers that carry them.
# Run the warmer with PURGE_URLS=http://<this varnish>/ (PURGE_METHOD and PURGE_KEY_HEADER keep
# their defaults). Needs the xkey vmod: Debian's varnish-modules.
vcl 4.1;

import xkey;

backend api {
    .host = "127.0.0.1";
    .port = "8000";
}

# Who may purge: the warmers. Put their addresses here.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (!req.http.xkey-purge) {
            return (synth(400, "the xkey-purge header names the surrogate keys to purge"));
        }
        set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Purged " + req.http.n-gone + " objects"));
    }
    # Writes and admin requests reach the api as they are.
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Answers depend on neither cookies nor credentials.
    unset req.http.Cookie;
    if (req.http.Authorization) {
        return (pass);
    }
    # A read at a write's position (read-your-writes) is the api's to answer: an object cached
    # before the write would not hold it.
    if (req.http.Warmcache-Position) {
        return (pass);
    }
}

sub vcl_backend_response {
    # xkey reads an object's keys from its xkey header: the api sends them as Surrogate-Key.
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
}

sub vcl_deliver {
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    # How many times this object was served from the cache: 0 for one fresh from the api.
    set resp.http.X-Varnish-Hits = obj.hits;
}
