/* infrastructure/util/im_port_file.h: the --port-file of the servers. */
#ifndef IM_PORT_FILE_H
#define IM_PORT_FILE_H

/* Writes port and a newline to path, through a temporary name renamed
 * into place, so that a reader never sees half of it. 0, or -1 with errno
 * set. path is borrowed for the call. */
int im_port_file_write(const char *path, unsigned port);

#endif
