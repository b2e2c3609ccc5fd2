/* domain/error.c: the error record and the names of the IM_E* codes.
 *
 * It lives in the domain because the domain is the innermost layer that
 * reports failures; every outer layer links it through imcore_domain. It must
 * know nothing of where a message ends up (log, wire, terminal), which is why
 * it only formats into the caller's buffer. */
#include <stdarg.h>
#include <stdio.h>

#include "imcore/errors.h"

int im_error_set(im_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        /* A message cut short is still a message: the code is what callers
         * act on, so truncation is not an error here. */
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void im_error_clear(im_error *err)
{
    if (!err)
        return;
    err->code = IM_OK;
    err->msg[0] = '\0';
}

const char *im_strerror(int code)
{
    /* A switch rather than a table indexed by -code, so that a gap or a
     * reordering in errors.h cannot silently shift every name. */
    switch (code) {
    case IM_OK:           return "OK";
    case IM_ENOMEM:       return "ENOMEM";
    case IM_EINVAL:       return "EINVAL";
    case IM_EPROTO:       return "EPROTO";
    case IM_EFRAMESIZE:   return "EFRAMESIZE";
    case IM_ENOTAUTH:     return "ENOTAUTH";
    case IM_ESTATE:       return "ESTATE";
    case IM_EOFFLINE:     return "EOFFLINE";
    case IM_ENOGROUP:     return "ENOGROUP";
    case IM_EEXIST:       return "EEXIST";
    case IM_EFULL:        return "EFULL";
    case IM_ENOTMEMBER:   return "ENOTMEMBER";
    case IM_EMEMBER:      return "EMEMBER";
    case IM_ETOOBIG:      return "ETOOBIG";
    case IM_EREPLACED:    return "EREPLACED";
    case IM_EIDLE:        return "EIDLE";
    case IM_ESHUTDOWN:    return "ESHUTDOWN";
    case IM_EIO:          return "EIO";
    case IM_ERATE:        return "ERATE";
    case IM_EDUPLICATE:   return "EDUPLICATE";
    case IM_EUNSUPPORTED: return "EUNSUPPORTED";
    case IM_EBUSY:        return "EBUSY";
    case IM_ENOSPC:       return "ENOSPC";
    case IM_ENOTFOUND:    return "ENOTFOUND";
    case IM_EAUTH:        return "EAUTH";
    case IM_EUSEREXISTS:  return "EUSEREXISTS";
    case IM_EREFUSED:     return "EREFUSED";
    case IM_EUNKNOWNUSER: return "EUNKNOWNUSER";
    case IM_EIDREUSED:    return "EIDREUSED";
    case IM_EPERM:        return "EPERM";
    case IM_EQUOTA:       return "EQUOTA";
    default:              return "EUNKNOWN";
    }
}
