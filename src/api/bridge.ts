// `vfio-twin/bridge`: the server that runs unmodified C programs on a twin (docs/bridge.md):
// `new BridgeServer(twin).listen(path)`, then run a program with VFIO_TWIN_SOCKET=path and
// LD_PRELOAD=preloadLibrary() (built from the packaged C sources with the system compiler on
// first use). Needs koffi (an optional dependency) for the programs' memory.

export { BridgeServer, type ServerOptions } from "../bridge/server.js";
export { preloadLibrary } from "../cli/bridge.js";
