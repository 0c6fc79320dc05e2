"""
Access to the OpenSSL functions pyOpenSSL does not expose; the only package
of resumetls that touches raw cffi pointers.

  - L{functions}: what we call (C signatures, capability groups, constants).
  - L{symbols}: finding them in cryptography's binary (ELF C{.symtab},
    offsets cache, three-anchor self-check) and the process-wide C{route()}.
  - L{route}: L{route.OpenSSLRoute}, typed calls on pyOpenSSL contexts.
  - L{callbacks}: one class per C callback OpenSSL calls in a handshake.
  - L{sessions}: sessions as DER and details; C{connection_reused}.
  - L{report}: what this machine allows, for C{resumetls doctor}.
  - L{compat}: every private pyOpenSSL and Twisted attribute we touch.
  - L{ffi}, L{errors}: the cffi handles and the route's one error.

Nothing is imported here, so that importing a module of this package stays
cheap; the public names are re-exported from L{resumetls}.
"""
