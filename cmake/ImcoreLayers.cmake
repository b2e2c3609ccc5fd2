# The layers' include paths (docs/architecture.md, "How the build keeps the
# layers"). Sources name a layer from the tree's root ("domain/group.h",
# "application/im_app.h"), but putting the root itself on an include path
# would open every folder to every target: application/ could then include
# "infrastructure/log/im_log.h" and nothing would stop it. So each layer gets
# a directory of its own in the build tree that holds one entry, a symbolic
# link named after the layer, and a target that may see the layer gets that
# directory and nothing more.
#
# Libraries installed in the system's include directory cannot be kept out
# by leaving a path off; for the inner layers, a directory of stand-in
# headers that stop the compilation with #error is put ahead of them.

# imcore_layer_include_dir(<var> <layer>): the directory in which
# "<layer>/..." names ${IMCORE_TREE}/<layer>/..., set in <var>.
function(imcore_layer_include_dir var layer)
  get_filename_component(tree "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/.." ABSOLUTE)
  set(dir "${CMAKE_BINARY_DIR}/layers/${layer}")
  if(NOT IS_SYMLINK "${dir}/${layer}")
    file(MAKE_DIRECTORY "${dir}")
    file(CREATE_LINK "${tree}/${layer}" "${dir}/${layer}" SYMBOLIC)
  endif()
  set(${var} "${dir}" PARENT_SCOPE)
endfunction()

# The headers of the libraries the adapters wrap, which domain/ and
# application/ must never name.
set(IMCORE_FORBIDDEN_LIBRARY_HEADERS
  event.h evhttp.h evdns.h evutil.h evrpc.h
  event2/event.h event2/buffer.h event2/bufferevent.h event2/listener.h
  event2/util.h event2/thread.h event2/dns.h event2/http.h
  event2/event_struct.h event2/event_compat.h event2/bufferevent_struct.h
  protobuf-c/protobuf-c.h google/protobuf-c/protobuf-c.h
  sqlite3.h yaml.h sodium.h libpq-fe.h hiredis/hiredis.h zookeeper/zookeeper.h
  dlfcn.h)

# imcore_forbid_libraries(<target> <layer>): <target>'s own sources fail to
# compile if they include one of the headers above.
function(imcore_forbid_libraries target layer)
  set(dir "${CMAKE_BINARY_DIR}/layers/forbidden-${layer}")
  foreach(h IN LISTS IMCORE_FORBIDDEN_LIBRARY_HEADERS)
    set(text "#error \"${layer}/ may not include <${h}>: libraries are reached through ports (docs/architecture.md)\"\n")
    if(EXISTS "${dir}/${h}")
      file(READ "${dir}/${h}" old)
    else()
      set(old "")
    endif()
    if(NOT old STREQUAL text)
      file(WRITE "${dir}/${h}" "${text}")
    endif()
  endforeach()
  target_include_directories(${target} BEFORE PRIVATE "${dir}")
endfunction()

# include/imcore, the public headers: the one include directory every layer,
# plugins included, may see. "imcore/plugin.h", "imcore/errors.h" ...
if(NOT TARGET imcore_public_headers)
  get_filename_component(_imcore_tree "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
  add_library(imcore_public_headers INTERFACE)
  target_include_directories(imcore_public_headers INTERFACE "${_imcore_tree}/include")
  unset(_imcore_tree)
endif()
