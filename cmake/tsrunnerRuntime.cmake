# Shipping an app built on tsrunner (docs/deploy.md). Installed beside tsrunnerConfig.cmake,
# which includes it; the source tree's own build includes it too, for the Torch fix-up below.
#
#   tsrunner_install_runtime(TARGET <target>... [DESTINATION <dir>]
#                            [LIBRARY_DESTINATION <dir>] [COMPONENT <component>])
#
# Installs each target to DESTINATION (default bin; LIBRARY_DESTINATION for a shared library)
# and, at install time, the shared libraries it loads from tsrunner's and LibTorch's lib
# folders (libtsrunner, libonig, libtorch, libtorch_cpu, libc10, libgomp, ...) plus libonig
# wherever it was found, all to LIBRARY_DESTINATION (default lib). The targets' INSTALL_RPATH
# becomes $ORIGIN-relative (e.g. $ORIGIN/../lib), so the installed tree runs from wherever it
# is copied to, with an empty environment; glibc and the C++ runtime come from the system.
include_guard(GLOBAL)

function(tsrunner_install_runtime)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "DESTINATION;LIBRARY_DESTINATION;COMPONENT" "TARGET")
  if(arg_UNPARSED_ARGUMENTS OR NOT arg_TARGET)
    message(FATAL_ERROR "usage: tsrunner_install_runtime(TARGET <target>... [DESTINATION <dir>] "
                        "[LIBRARY_DESTINATION <dir>] [COMPONENT <component>])")
  endif()
  if(NOT DEFINED arg_DESTINATION)
    set(arg_DESTINATION bin)
  endif()
  if(NOT DEFINED arg_LIBRARY_DESTINATION)
    set(arg_LIBRARY_DESTINATION lib)
  endif()
  foreach(_dir IN ITEMS "${arg_DESTINATION}" "${arg_LIBRARY_DESTINATION}")
    if(IS_ABSOLUTE "${_dir}")
      message(FATAL_ERROR "tsrunner_install_runtime: ${_dir} must be relative to the install "
                          "prefix (the RPATH is relative to the installed binary)")
    endif()
  endforeach()
  set(_component)
  if(arg_COMPONENT)
    set(_component COMPONENT "${arg_COMPONENT}")
  endif()

  file(RELATIVE_PATH _to_lib "/${arg_DESTINATION}" "/${arg_LIBRARY_DESTINATION}")
  set(_executable_rpath "$ORIGIN")
  if(_to_lib)
    set(_executable_rpath "$ORIGIN/${_to_lib}")
  endif()

  set(_executables)
  set(_libraries)
  foreach(_target IN LISTS arg_TARGET)
    if(NOT TARGET "${_target}")
      message(FATAL_ERROR "tsrunner_install_runtime: no target named ${_target}")
    endif()
    get_target_property(_type "${_target}" TYPE)
    if(_type STREQUAL "EXECUTABLE")
      set_target_properties("${_target}" PROPERTIES INSTALL_RPATH "${_executable_rpath}")
      list(APPEND _executables "$<TARGET_FILE:${_target}>")
    elseif(_type STREQUAL "SHARED_LIBRARY" OR _type STREQUAL "MODULE_LIBRARY")
      set_target_properties("${_target}" PROPERTIES INSTALL_RPATH "$ORIGIN")
      list(APPEND _libraries "$<TARGET_FILE:${_target}>")
    else()
      message(FATAL_ERROR "tsrunner_install_runtime: ${_target} is a ${_type}; "
                          "give executables or shared libraries")
    endif()
    # Absolute build-tree paths never reach the installed RPATH.
    set_target_properties("${_target}" PROPERTIES INSTALL_RPATH_USE_LINK_PATH OFF)
  endforeach()

  install(TARGETS ${arg_TARGET}
    RUNTIME DESTINATION "${arg_DESTINATION}" ${_component}
    LIBRARY DESTINATION "${arg_LIBRARY_DESTINATION}" ${_component})

  # At install time the dependencies are read from the build tree's files, whose build RPATH
  # still finds them.
  install(CODE "
    include(\"${CMAKE_CURRENT_FUNCTION_LIST_FILE}\")
    _tsrunner_install_dependencies(
      DESTINATION \"${arg_LIBRARY_DESTINATION}\"
      EXECUTABLES \"${_executables}\"
      LIBRARIES \"${_libraries}\"
      FROM \"$<TARGET_FILE_DIR:tsrunner::tsrunner>\" \"$<TARGET_FILE_DIR:torch>\")
  " ${_component})
endfunction()

# System libraries every Linux has (glibc's, the C++ runtime): never copied. What manylinux
# wheels may assume, as tests/python/test_install.py checks for tsrun.
set(_TSRUNNER_SYSTEM_LIBRARIES
  "^linux-vdso" "^ld-linux" "^lib(c|m|dl|rt|pthread|util|resolv|stdc\\+\\+|gcc_s)\\.so")

# Runs at install time (cmake -P): copies the libraries the given files load from the FROM
# folders (and libonig from anywhere) to DESTINATION, each under the name the loader asks for.
function(_tsrunner_install_dependencies)
  cmake_parse_arguments(arg "" "DESTINATION" "EXECUTABLES;LIBRARIES;FROM" ${ARGN})
  set(_from)
  foreach(_dir IN LISTS arg_FROM)
    file(REAL_PATH "${_dir}" _real)
    list(APPEND _from "${_real}")
  endforeach()
  set(_files)
  if(arg_EXECUTABLES)
    list(APPEND _files EXECUTABLES ${arg_EXECUTABLES})
  endif()
  if(arg_LIBRARIES)
    list(APPEND _files LIBRARIES ${arg_LIBRARIES})
  endif()
  file(GET_RUNTIME_DEPENDENCIES
    ${_files}
    DIRECTORIES ${arg_FROM}
    PRE_EXCLUDE_REGEXES ${_TSRUNNER_SYSTEM_LIBRARIES}
    RESOLVED_DEPENDENCIES_VAR _resolved
    UNRESOLVED_DEPENDENCIES_VAR _unresolved)
  if(_unresolved)
    message(FATAL_ERROR "tsrunner_install_runtime: cannot find ${_unresolved}")
  endif()
  set(_destination "${arg_DESTINATION}")
  if(NOT IS_ABSOLUTE "${_destination}")
    set(_destination "${CMAKE_INSTALL_PREFIX}/${_destination}")
  endif()
  foreach(_path IN LISTS _resolved)
    get_filename_component(_name "${_path}" NAME)
    file(REAL_PATH "${_path}" _real)
    get_filename_component(_real_dir "${_real}" DIRECTORY)
    if(_real_dir IN_LIST _from OR _name MATCHES "^libonig\\.so")
      # Under the name the loader looks for (a wheel has no symlinks; a system copy may).
      file(INSTALL DESTINATION "$ENV{DESTDIR}${_destination}" TYPE FILE
           FILES "${_real}" RENAME "${_name}")
    endif()
  endforeach()
endfunction()

# Torch's CMake (Caffe2/public/mkl.cmake) gives caffe2::mkl, which every Torch consumer links
# through torch_cpu, the link directories ${MKL_ROOT}/lib/{intel64,intel64_win,win-x64} even
# when MKL_ROOT is empty (the wheel links MKL statically), and CMake writes each link directory
# into the build RPATH: /lib/intel64:/lib/intel64_win:/lib/win-x64 in every app, and in the
# installed RPATH of any target with INSTALL_RPATH_USE_LINK_PATH. Keep only folders that exist.
function(_tsrunner_drop_missing_torch_link_directories)
  if(NOT TARGET caffe2::mkl)
    return()
  endif()
  get_target_property(_directories caffe2::mkl INTERFACE_LINK_DIRECTORIES)
  if(NOT _directories)
    return()
  endif()
  set(_existing)
  foreach(_directory IN LISTS _directories)
    if(IS_DIRECTORY "${_directory}")
      list(APPEND _existing "${_directory}")
    endif()
  endforeach()
  set_property(TARGET caffe2::mkl PROPERTY INTERFACE_LINK_DIRECTORIES "${_existing}")
endfunction()
