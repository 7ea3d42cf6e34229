# Installs libtsrunner, its public headers and a CMake package so that C++ apps can
#   find_package(tsrunner CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE tsrunner::tsrunner)
# with CMAKE_PREFIX_PATH=$(python -m tsrunner --cmake-prefix-path).
include(CMakePackageConfigHelpers)

install(TARGETS tsrunner
  EXPORT tsrunnerTargets
  LIBRARY DESTINATION ${TSR_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${TSR_INSTALL_LIBDIR}
  RUNTIME DESTINATION bin
  INCLUDES DESTINATION ${TSR_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/cpp/include/tsrunner
  DESTINATION ${TSR_INSTALL_INCLUDEDIR})
install(EXPORT tsrunnerTargets
  NAMESPACE tsrunner::
  DESTINATION ${TSR_INSTALL_CMAKEDIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/tsrunnerConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tsrunnerConfig.cmake
  INSTALL_DESTINATION ${TSR_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/tsrunnerConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/tsrunnerConfig.cmake
  ${PROJECT_BINARY_DIR}/tsrunnerConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/tsrunnerRuntime.cmake
  DESTINATION ${TSR_INSTALL_CMAKEDIR})

# pkg-config, for builds without CMake. In a wheel torch sits beside the package in
# site-packages, so its paths stay relative to the .pc file; elsewhere they are Torch's own.
if(SKBUILD)
  set(TSR_PC_TORCH_PREFIX "\${prefix}/../torch")
else()
  set(TSR_PC_TORCH_PREFIX "${TORCH_INSTALL_PREFIX}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/tsrunner.pc.in ${PROJECT_BINARY_DIR}/tsrunner.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tsrunner.pc DESTINATION ${TSR_INSTALL_LIBDIR}/pkgconfig)
