# The pockets the image's apt sources have beside the release itself.
export DIB_UBUNTU_MIRROR_DISTS=${DIB_UBUNTU_MIRROR_DISTS:-"updates,security,backports"}
