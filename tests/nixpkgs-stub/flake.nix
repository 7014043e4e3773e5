# A stand-in for nixpkgs' nixos-26.11 branch, for tests/test_flakes.py: just the attributes the template's flakes
# use, each behaving as the real one does where it matters to them, so that a flake which evaluates here without a
# warning evaluates on real nixpkgs too:
#   - its packages refuse a Nix that reports a version below 2.18, as nixpkgs' lib/minfeatures.nix makes them;
#   - it has the Python interpreters 26.11 has (python311 to python315) and no others;
#   - x86_64-darwin, which 26.11 dropped, throws 26.11's message on any use;
#   - deprecated names warn as nixpkgs' aliases do (lib.warn, which is builtins.warn on Nix >= 2.23), and the tests
#     make warnings fatal.
# The packages are derivations whose build writes an empty output at once (nix develop builds a shell's inputs);
# a misspelled name is a missing attribute and fails evaluation. When a flake starts using another nixpkgs
# attribute, add it here under the name nixpkgs gives it.
{
  outputs = { self }:
    let
      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
        optionals = condition: list: if condition then list else [ ];
        optionalString = condition: string: if condition then string else "";
        makeLibraryPath = packages: builtins.concatStringsSep ":" (map (package: "${package}/lib") packages);
        isDerivation = value: value.type or null == "derivation";
        warn = builtins.warn or (message: builtins.trace "evaluation warning: ${message}");
        # A derivation that warns when it is used, as nixpkgs wraps a deprecated package's alias.
        warnOnInstantiate = message: drv:
          drv // builtins.mapAttrs (_: lib.warn message) (removeAttrs drv [ "meta" "name" "type" "outputName" ]);
        systems.flakeExposed = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      };

      # nixpkgs' lib/minfeatures.nix: the features nixpkgs needs of the Nix evaluating it.
      missingNixFeatures = lib.optionals
        (!(builtins ? nixVersion) || builtins.compareVersions "2.18" builtins.nixVersion == 1)
        [ "`builtins.nixVersion` reports at least 2.18" ];

      checkedNix = packages:
        if missingNixFeatures == [ ] then packages else abort ''
          This version of Nixpkgs requires an implementation of Nix with the following features:
          ${builtins.concatStringsSep "\n" (map (feature: "- ${feature}") missingNixFeatures)}

          You are evaluating with Nix ${builtins.nixVersion or "(unknown version)"}, please upgrade.'';

      droppedX86_64Darwin = ''
        Nixpkgs 26.11 has dropped support for x86_64-darwin.

        The 26.05 stable branch still supports x86_64-darwin, and will
        receive security fixes until the end of 2026.'';

      packagesFor = system:
        let
          package = name: builtins.derivation {
            inherit name system;
            builder = "/bin/sh";
            args = [ "-c" ": > $out" ];
          };
          python = version: package "python3-${version}";
          isLinux = builtins.elem system [ "x86_64-linux" "aarch64-linux" ];
          stdenv = {
            hostPlatform = {
              inherit system isLinux;
              isDarwin = !isLinux;
              isAarch64 = builtins.elem system [ "aarch64-linux" "aarch64-darwin" ];
            };
            cc.cc.lib = package "gcc-lib";
          };
          nixfmt = package "nixfmt";
          python313 = python "3.13";
        in
        {
          inherit lib stdenv nixfmt python313;
          # Like nixpkgs' mkShell: `packages` must be derivations, other attributes become environment variables,
          # and nix develop can enter it (a bash builder and an `out` output).
          mkShell = { packages ? [ ], ... }@attrs:
            assert builtins.all lib.isDerivation packages;
            builtins.derivation (removeAttrs attrs [ "packages" ] // {
              name = "nix-shell";
              inherit system packages;
              builder = "/bin/bash";
              outputs = [ "out" ];
            });
          python311 = python "3.11";
          python312 = python "3.12";
          python314 = python "3.14";
          python315 = python "3.15";
          python3 = python313;
          uv = package "uv";
          git = package "git";
          zlib = package "zlib";
          chromium = package "chromium";

          # Deprecated names, warning as in nixpkgs.
          nixfmt-rfc-style =
            lib.warnOnInstantiate "nixfmt-rfc-style is now the same as pkgs.nixfmt which should be used instead." nixfmt;
          system =
            lib.warn "'system' has been renamed to/replaced by 'stdenv.hostPlatform.system'" system;
        };
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs lib.systems.flakeExposed (system:
        if system == "x86_64-darwin" then throw droppedX86_64Darwin else checkedNix (packagesFor system));
    };
}
