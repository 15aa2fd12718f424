export * from "./iac.js"
