# Fork-owned: your additions to the Nix shells. flake.nix imports this file; template updates never touch it.
# Flakes only see files git knows about, so keep this file committed.
{ pkgs }:
{
  # Extra tools in every shell, e.g. [ pkgs.ffmpeg pkgs.sqlite ].
  packages = [ ];

  # Extra bash run at shell start, before the shells set up or start anything, e.g. ''export OLLAMA_HOST=http://gpu-box:11434''.
  shellHook = "";
}
