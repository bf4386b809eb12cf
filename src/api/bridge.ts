// `vfio-twin/bridge`: the server that runs unmodified C programs on a twin (docs/bridge.md):
// `new BridgeServer(twin).listen(path)`; programs connect through the preload library. Needs
// koffi (an optional dependency) for the programs' memory.

export { BridgeServer, type ServerOptions } from "../bridge/server.js";
