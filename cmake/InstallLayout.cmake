# Where things go when installed, and RPATHs that keep working wherever the wheel lands.
#
# In a wheel (scikit-build-core, wheel.install-dir = "tsrunner") the install prefix is
# site-packages/tsrunner and torch lives beside it in site-packages/torch, so every binary finds
# its libraries through $ORIGIN-relative paths; no absolute build path is ever baked in.
set(TSR_INSTALL_LIBDIR "lib")
set(TSR_INSTALL_INCLUDEDIR "include")
set(TSR_INSTALL_CMAKEDIR "lib/cmake/tsrunner")

# Sets the install RPATH of `target`, installed under <prefix>/<install_dir>, to find
# libtsrunner (<prefix>/lib) and LibTorch (<prefix>/../torch/lib in a wheel).
function(tsr_set_relative_rpath target install_dir)
  if(SKBUILD)
    set(_fake_prefix "/site-packages/tsrunner")
    file(RELATIVE_PATH _to_lib "${_fake_prefix}/${install_dir}" "${_fake_prefix}/lib")
    file(RELATIVE_PATH _to_torch "${_fake_prefix}/${install_dir}" "/site-packages/torch/lib")
    set(_rpath "$ORIGIN")
    if(_to_lib)
      set(_rpath "$ORIGIN/${_to_lib}")
    endif()
    set_target_properties(${target} PROPERTIES INSTALL_RPATH "${_rpath};$ORIGIN/${_to_torch}")
  else()
    set_target_properties(${target} PROPERTIES
      INSTALL_RPATH "$ORIGIN/../${TSR_INSTALL_LIBDIR}"
      INSTALL_RPATH_USE_LINK_PATH TRUE)
  endif()
endfunction()
